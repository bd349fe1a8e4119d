// The `security` config section, with the reason for each default, and its JSON Schema.
// docs/security.md explains the model; docs/configuration.md is generated from this block.
import { boolean, checkOptions, int32, integer, list, object, oneOf, orNull, section, string, type SectionSchema } from '../config/schema.js';
import { OAUTHBEARER_ALGORITHMS, readJwks, type OAuthBearerOptions } from './oauthbearer.js';

export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'OAUTHBEARER';

export interface SecurityOptions {
  allowAnonymous: boolean | null;
  authorization: boolean;
  superUsers: string[];
  saslMechanisms: SaslMechanism[];
  oauthbearer: OAuthBearerOptions | null;
  reauthMs: number;
  loginFailuresMax: number;
  loginFailureWindowMs: number;
  loginFailureAddressesMax: number;
  scramIterations: number;
  allowedOrigins: string[];
}

export const defaultSecurityOptions: SecurityOptions = {
  // null = Mosquitto 2.0's rule: clients need not authenticate while every listener is on
  // loopback; a listener on another address needs this set: true (anyone, logged as a warning at
  // start) or false (the Kafka listener requires SASL; doors not yet wired to SASL stay refused)
  allowAnonymous: null,
  // false = no authorizer: everyone may do everything except touch internal topics (reads of
  // `__*` need an ACL naming them); true = ACLs decide (deny wins, no ACL = refused) and at least
  // one super-user must be configured first, so turning it on cannot lock everyone out
  authorization: false,
  // principals (`User:<name>`) that bypass every ACL: the operators' accounts
  superUsers: [],
  // what SaslHandshake offers; PLAIN sends the password itself, so drop it where the network is untrusted until TLS lands
  saslMechanisms: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'],
  // SASL/OAUTHBEARER (add OAUTHBEARER to saslMechanisms too): JWTs signed by an identity
  // provider, checked offline against its public keys in a JWKS file (docs/security.md,
  // "OAUTHBEARER"); null = not offered. Keys: jwksFile (required), issuer (null = any),
  // audience ([] = not checked), principalClaim (default sub), clockSkewMs (default 30000),
  // algorithms (default every RS*, PS*, ES* and EdDSA; never none or HMAC)
  oauthbearer: null,
  // Kafka's connections.max.reauth.ms (KIP-368): a session lasts this long, then the client must
  // re-authenticate on the same connection (a deleted user or changed password takes effect
  // within an hour); 0 = sessions never expire
  reauthMs: 60 * 60_000,
  // failed logins per source address within loginFailureWindowMs before further attempts from
  // that address are refused unchecked: slows password guessing to a crawl, lets a typo through
  loginFailuresMax: 10,
  loginFailureWindowMs: 60_000, // one minute: an operator who mistyped waits a minute, a guesser gets 10 tries a minute
  loginFailureAddressesMax: 10_000, // addresses tracked at once (oldest forgotten first): bounds the table under a spray of sources
  scramIterations: 8192, // PBKDF2 rounds for credentials the CLI creates: twice Kafka's minimum 4096 (about 10 ms of a client's CPU with SHA-512 on the bench machine, docs/security.md); the server never pays it for SCRAM
  // browser pages allowed to open WebSocket upgrades (`/ws`, MQTT over WebSocket) besides the
  // same origin: each `scheme://host[:port]` exactly, or `*` for any. Empty = same-origin only
  // (Origin absent, or equal to the Host the request came to): a page on another site cannot
  // use a visitor's browser to read the broker (finding 4, cross-site WebSocket hijacking)
  allowedOrigins: [],
};

export const securitySchema: SectionSchema = section({
  allowAnonymous: orNull(boolean()),
  authorization: boolean(),
  superUsers: list(string(6), 'a list of principals, each `User:<name>`'),
  saslMechanisms: list(oneOf('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'), 'a list of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER'),
  oauthbearer: orNull(
    object(
      {
        jwksFile: string(1),
        issuer: orNull(string(1)),
        audience: list(string(1)),
        principalClaim: string(1),
        clockSkewMs: integer(0, 3_600_000),
        algorithms: { type: 'array', items: { enum: [...OAUTHBEARER_ALGORITHMS] }, minItems: 1 },
      },
      ['jwksFile'],
      `{ jwksFile, issuer?, audience?, principalClaim?, clockSkewMs? (0 to 3600000), algorithms? (a non-empty list of ${OAUTHBEARER_ALGORITHMS.join(', ')}) }`,
    ),
  ),
  reauthMs: int32(0),
  loginFailuresMax: int32(1),
  loginFailureWindowMs: int32(1),
  loginFailureAddressesMax: integer(1, 10_000_000),
  scramIterations: integer(4096, 16384),
  allowedOrigins: list(string(1), 'a list of origins, each `*` or scheme://host[:port]'),
});

/** What an `oauthbearer` block leaves out. */
export const defaultOAuthBearerOptions: Omit<OAuthBearerOptions, 'jwksFile'> = {
  issuer: null,
  audience: [],
  principalClaim: 'sub',
  clockSkewMs: 30_000, // a gateway without NTP drifts; half a minute either way, as common JWT libraries allow
  algorithms: [...OAUTHBEARER_ALGORITHMS],
};

/** Checks options given in code (a node's config was checked by the loader); throws naming the key. */
export function validateSecurityOptions(o: SecurityOptions): SecurityOptions {
  checkOptions(securitySchema, o as unknown as Record<string, unknown>, 'security option ');
  if (o.oauthbearer) o.oauthbearer = { ...defaultOAuthBearerOptions, ...o.oauthbearer };
  const offered = o.saslMechanisms.includes('OAUTHBEARER');
  if (offered && !o.oauthbearer) throw new Error('security option saslMechanisms: OAUTHBEARER needs security.oauthbearer (at least { jwksFile }) to check tokens against');
  if (!offered && o.oauthbearer) throw new Error('security option oauthbearer: set, but security.saslMechanisms does not offer OAUTHBEARER; add it to the list');
  // Read now, so a missing or unusable key file stops the start before anything binds.
  if (o.oauthbearer) {
    try {
      readJwks(o.oauthbearer.jwksFile);
    } catch (err) {
      throw new Error(`security option oauthbearer.jwksFile: ${(err as Error).message}`);
    }
  }
  for (const p of o.superUsers) if (!/^User:.+$/.test(p)) throw new Error(`security option superUsers: "${p}" is not User:<name>`);
  // Redpanda's lock-out lesson: an authorizer with nobody able to grant anything is a dead broker.
  if (o.authorization && o.superUsers.length === 0) throw new Error('security option authorization: true needs at least one entry in superUsers (User:<name>), or nobody could ever grant an ACL');
  return o;
}
