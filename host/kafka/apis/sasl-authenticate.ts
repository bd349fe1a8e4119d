// SaslAuthenticate (key 36), versions 0–2; v2+ flexible.
//   v0: auth_bytes; response error_code, error_message, auth_bytes
//   v1: response + session_lifetime_ms (KIP-368: the client re-authenticates before it ends)
//   v2: flexible
// Carries one SASL token each way for the mechanism chosen by SaslHandshake: PLAIN in one round
// (RFC 4616), SCRAM-SHA-256/512 in two (RFC 5802/7677: client-first → server-first, then
// client-final → server-final). Credentials are the SCRAM keys in the metadata image; PLAIN
// checks the password against them. Failures answer SASL_AUTHENTICATION_FAILED (the message
// never says whether the user exists) and close the connection, as Kafka does; each failure
// counts against the client's address, and past security.loginFailuresMax in
// security.loginFailureWindowMs further attempts from it are refused unchecked. No password,
// proof, key or token is ever logged: only the user name, mechanism and address. TRIBUTARY-NODE
// (another node of the cluster, host/security/node-identity.ts) in two rounds: node id → nonce,
// signature → "". OAUTHBEARER (RFC 7628, host/security/oauthbearer.ts) in one round: the client's
// JWT is checked against the JWKS file, and the session lasts until the token expires at the
// latest (the refusal goes straight to SASL_AUTHENTICATION_FAILED with the reason, rather than
// RFC 7628's error-JSON round, which Kafka's clients do not need to learn why).
import { f, type Schema } from '../protocol/schema.js';
import { ERRORS, type ErrorName } from '../../errors/index.js';
import { addressOf, OAuthBearerError, parsePlain, passwordMatches, principalText, ScramError, ScramServer, SCRAM_ITERATIONS_MIN, userPrincipal, type ScramMechanism } from '../../security/index.js';
import type { ApiHandler, RequestContext } from './types.js';
import { NODE_SASL_MECHANISM, nodeNonce, nodePrincipalName, verifyNodeProof } from '../../security/node-identity.js';

const request: Schema = [f('authBytes', 'bytes', '0+')];
const response: Schema = [
  f('errorCode', 'int16', '0+'),
  f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
  f('authBytes', 'bytes', '0+'),
  f('sessionLifetimeMs', 'int64', '1+', { default: 0 }),
];

const EMPTY = new Uint8Array(0);

/** `counted` false: a refusal that is no credential guess (the failed-login limiter does not count it). */
function fail(ctx: RequestContext, code: ErrorName, message: string, user: string | null, counted = true) {
  ctx.session.state = ctx.session.authenticated ? 'done' : 'start';
  ctx.session.scram = null;
  ctx.session.nodeChallenge = null;
  if (code === 'SASL_AUTHENTICATION_FAILED' && counted) {
    const failures = ctx.security.limiter.failed(addressOf(ctx.remoteAddress));
    ctx.metrics.counter('tributary_kafka_sasl_failures_total', 'Failed Kafka SASL logins').inc();
    ctx.logger.warn({ user, mechanism: ctx.session.mechanism, failuresInWindow: failures }, `SASL authentication failed: ${message}`);
  } else {
    ctx.logger.info({ user, mechanism: ctx.session.mechanism }, `SASL exchange refused: ${message}`);
  }
  ctx.closeAfterResponse();
  return { errorCode: ERRORS[code].kafka, errorMessage: code === 'SASL_AUTHENTICATION_FAILED' ? `Authentication failed: ${message}` : message, authBytes: EMPTY, sessionLifetimeMs: 0 };
}

/** `tokenExpiresAtMs`: an OAUTHBEARER token's end (the session may not outlive it); 0 = none. */
function succeed(ctx: RequestContext, user: string, authBytes: Uint8Array, interNodeId: number | null = null, tokenExpiresAtMs = 0) {
  const s = ctx.session;
  const principal = userPrincipal(user);
  // KIP-368: re-authentication may not change who the connection is.
  if (s.authenticated && principalText(s.principal) !== principalText(principal)) {
    return fail(ctx, 'SASL_AUTHENTICATION_FAILED', `re-authentication as ${user} on a connection of ${principalText(s.principal)}`, user);
  }
  let reauthMs = ctx.security.options.reauthMs;
  if (tokenExpiresAtMs > 0) {
    // The token was just accepted, so this is > 0 (exp + skew is ahead); at least 1 ms, as 0 would mean "never".
    const untilExpiry = Math.max(1, tokenExpiresAtMs + (ctx.security.oauth?.options.clockSkewMs ?? 0) - Date.now());
    reauthMs = reauthMs > 0 ? Math.min(reauthMs, untilExpiry) : untilExpiry;
  }
  // Re-authentication may not turn a client session into a node's either.
  if (s.authenticated && s.interNodeId !== interNodeId) {
    return fail(ctx, 'SASL_AUTHENTICATION_FAILED', `re-authentication changes the connection's node identity`, user);
  }
  s.principal = principal;
  s.interNodeId = interNodeId;
  s.authenticated = true;
  s.state = 'done';
  s.scram = null;
  s.expiresAtMs = reauthMs > 0 ? Date.now() + reauthMs : 0;
  ctx.metrics.counter('tributary_kafka_sasl_logins_total', 'Successful Kafka SASL logins').inc();
  ctx.logger.info({ user, mechanism: s.mechanism, sessionLifetimeMs: reauthMs }, 'SASL authenticated');
  return { errorCode: ERRORS.NONE.kafka, errorMessage: null, authBytes, sessionLifetimeMs: reauthMs };
}

function credentialsOf(ctx: RequestContext, user: string) {
  return ctx.security.store?.image().scram.get(user);
}

function plain(ctx: RequestContext, bytes: Uint8Array) {
  const m = parsePlain(bytes);
  if (!m) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', 'malformed PLAIN message', null);
  const creds = credentialsOf(ctx, m.user);
  const ok = creds !== undefined && [...creds.values()].some((c) => passwordMatches(c, m.password));
  return ok ? succeed(ctx, m.user, EMPTY) : fail(ctx, 'SASL_AUTHENTICATION_FAILED', 'invalid user name or password', m.user);
}

function scram(ctx: RequestContext, bytes: Uint8Array) {
  const s = ctx.session;
  const text = Buffer.from(bytes).toString('utf8');
  try {
    if (s.state === 'handshaken') {
      const mechanism = s.mechanism as ScramMechanism;
      s.scram = new ScramServer({
        mechanism,
        lookup: (user) => credentialsOf(ctx, user)?.get(mechanism),
        fakeSecret: ctx.security.fakeSecret,
        fakeIterations: Math.max(SCRAM_ITERATIONS_MIN, ctx.security.options.scramIterations),
      });
      const serverFirst = s.scram.first(text);
      s.state = 'scram';
      return { errorCode: ERRORS.NONE.kafka, errorMessage: null, authBytes: Buffer.from(serverFirst), sessionLifetimeMs: 0 };
    }
    const server = s.scram!;
    const serverFinal = server.final(text);
    return succeed(ctx, server.username, Buffer.from(serverFinal));
  } catch (err) {
    if (!(err instanceof ScramError)) throw err;
    return fail(ctx, 'SASL_AUTHENTICATION_FAILED', err.message, s.scram?.username || null);
  }
}

/**
 * TRIBUTARY-NODE (host/security/node-identity.ts): round one names the node and gets a nonce,
 * round two signs it; checked against the key this node's metadata image holds for that node.
 */
function node(ctx: RequestContext, bytes: Uint8Array) {
  const s = ctx.session;
  const text = Buffer.from(bytes).toString('utf8');
  const image = ctx.security.store?.image();
  if (s.state === 'handshaken') {
    const from = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(from)) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', 'malformed node id', null);
    const nonce = nodeNonce();
    s.nodeChallenge = { from, nonce };
    s.state = 'scram';
    return { errorCode: ERRORS.NONE.kafka, errorMessage: null, authBytes: Buffer.from(Buffer.from(nonce).toString('base64')), sessionLifetimeMs: 0 };
  }
  const challenge = s.nodeChallenge;
  s.nodeChallenge = null;
  if (!challenge || !image) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', 'no node challenge', null);
  const user = nodePrincipalName(challenge.from);
  const peer = image.brokers?.get(challenge.from);
  // Not counted: a node restarted moments ago proves itself before its new registration (and
  // key) reached this node, and its forwards retry; counting those would lock its address out.
  if (!peer || peer.fenced || peer.nodeKey === undefined) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', `node ${challenge.from} is not a registered, live broker with a key`, user, false);
  const self = image.node.nodeId;
  if (!verifyNodeProof(peer.nodeKey, challenge.from, self, challenge.nonce, text)) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', `node ${challenge.from}'s proof does not verify`, user);
  return succeed(ctx, user, EMPTY, challenge.from);
}

function oauthbearer(ctx: RequestContext, bytes: Uint8Array) {
  const verifier = ctx.security.oauth;
  if (!verifier) return fail(ctx, 'SASL_AUTHENTICATION_FAILED', 'OAUTHBEARER is not configured (security.oauthbearer)', null, false);
  try {
    const token = verifier.verifyMessage(bytes);
    return succeed(ctx, token.name, EMPTY, null, token.expiresAtMs);
  } catch (err) {
    if (!(err instanceof OAuthBearerError)) throw err;
    return fail(ctx, 'SASL_AUTHENTICATION_FAILED', err.message, null);
  }
}

export const saslAuthenticate: ApiHandler = {
  apiKey: 36,
  name: 'SaslAuthenticate',
  minVersion: 0,
  maxVersion: 2,
  flexibleFrom: 2,
  request,
  response,
  async handle(req: { authBytes: Uint8Array }, ctx: RequestContext) {
    const s = ctx.session;
    if (s.state !== 'handshaken' && s.state !== 'scram') return fail(ctx, 'ILLEGAL_SASL_STATE', 'SaslAuthenticate without a SaslHandshake first', null);
    // Checked before any password work: a guesser past the limit costs us no PBKDF2.
    if (s.state === 'handshaken' && !ctx.security.limiter.allowed(addressOf(ctx.remoteAddress))) {
      ctx.session.state = s.authenticated ? 'done' : 'start';
      ctx.metrics.counter('tributary_kafka_sasl_rate_limited_total', 'Kafka SASL logins refused unchecked: too many failures from the address').inc();
      ctx.logger.warn({ mechanism: s.mechanism }, 'SASL login refused: too many failed logins from this address (security.loginFailuresMax)');
      ctx.closeAfterResponse();
      return { errorCode: ERRORS.SASL_AUTHENTICATION_FAILED.kafka, errorMessage: 'Authentication failed: too many failed logins from this address; try again later', authBytes: EMPTY, sessionLifetimeMs: 0 };
    }
    if (s.mechanism === NODE_SASL_MECHANISM) return node(ctx, req.authBytes ?? EMPTY);
    if (s.mechanism === 'OAUTHBEARER') return oauthbearer(ctx, req.authBytes ?? EMPTY);
    return s.mechanism === 'PLAIN' ? plain(ctx, req.authBytes ?? EMPTY) : scram(ctx, req.authBytes ?? EMPTY);
  },
};
