// What every door (Kafka, MQTT, HTTP/WebSocket, the schema registry) shares from host/security:
// the one Authorizer, the one failed-login limiter (a guesser who switches doors keeps counting
// against the same address) and the one user store (the SCRAM credentials `tributary users`
// and AlterUserScramCredentials write). Built once per node (host/node.ts) and handed to each
// door; a door started alone (tests) builds its own with `doorSecurity()`.
//
// Passwords that arrive in the clear (MQTT CONNECT, HTTP Basic) are checked against the stored
// SCRAM keys: one PBKDF2 per check, run on libuv's thread pool (`checkPassword` is async) so a
// login storm does not stall the event loop. A bounded set remembers recent successful logins
// (a hash of user, password and the stored key: a changed password no longer matches), so a
// reconnect storm of devices costs no PBKDF2; nothing in it can be turned back into a password.
import { createHash, pbkdf2, timingSafeEqual } from 'node:crypto';
import { Authorizer } from './authorizer.js';
import type { AclBinding } from './acl.js';
import { LoginLimiter } from './login-limiter.js';
import { defaultSecurityOptions, validateSecurityOptions, type SecurityOptions } from './options.js';
import { hashOf, keysFromSalted, type ScramCredential, type ScramMechanism } from './scram.js';
import { OAuthBearerVerifier } from './oauthbearer.js';

/** What the doors read from the metadata image (ACLs and SCRAM users), on every decision. */
export interface SecurityImage {
  readonly acls: readonly AclBinding[];
  readonly scram: ReadonlyMap<string, ReadonlyMap<ScramMechanism, ScramCredential>>;
}

export interface DoorSecurity {
  options: SecurityOptions;
  authorizer: Authorizer;
  limiter: LoginLimiter;
  /** SASL/OAUTHBEARER's token checker (security.oauthbearer); null = not offered. */
  oauth: OAuthBearerVerifier | null;
  /** The user's SCRAM credentials (undefined = no such user). */
  credentials(user: string): ReadonlyMap<ScramMechanism, ScramCredential> | undefined;
  /** Does `password` match one of the user's stored credentials? False for an unknown user. */
  checkPassword(user: string, password: string | Uint8Array): Promise<boolean>;
}

const VERIFIED_LOGINS_MAX = 1024; // successful logins remembered (oldest forgotten): a reconnect storm of up to 1,024 devices costs no PBKDF2

export function doorSecurity(options: Partial<SecurityOptions> | undefined, image: () => SecurityImage | undefined): DoorSecurity {
  const o = validateSecurityOptions({ ...defaultSecurityOptions, ...options });
  const verified = new Set<string>();
  const credentials = (user: string) => image()?.scram.get(user);
  return {
    options: o,
    authorizer: new Authorizer({ authorization: o.authorization, superUsers: o.superUsers }, () => image()?.acls ?? []),
    limiter: new LoginLimiter({ failuresMax: o.loginFailuresMax, windowMs: o.loginFailureWindowMs, addressesMax: o.loginFailureAddressesMax }),
    oauth: o.oauthbearer ? new OAuthBearerVerifier(o.oauthbearer) : null,
    credentials,
    async checkPassword(user, password) {
      const creds = credentials(user);
      if (!creds) return false;
      const pw = Buffer.from(password);
      for (const c of creds.values()) {
        const fingerprint = createHash('sha256').update(user).update('\0').update(pw).update('\0').update(c.storedKey).digest('base64');
        if (verified.has(fingerprint)) return true;
        if (!(await matches(c, pw))) continue;
        if (verified.size >= VERIFIED_LOGINS_MAX) verified.delete(verified.values().next().value!);
        verified.add(fingerprint);
        return true;
      }
      return false;
    },
  };
}

/** RFC 5802's check, off the event loop: Hi(password, salt, i) → StoredKey, compared in constant time. */
function matches(c: ScramCredential, password: Buffer): Promise<boolean> {
  const hash = hashOf(c.mechanism);
  return new Promise((resolve, reject) =>
    pbkdf2(password, c.salt, c.iterations, hash === 'sha256' ? 32 : 64, hash, (err, salted) => {
      if (err) return reject(err);
      const { storedKey } = keysFromSalted(hash, salted);
      resolve(storedKey.length === c.storedKey.length && timingSafeEqual(storedKey, c.storedKey));
    }),
  );
}
