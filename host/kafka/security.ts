// What the Kafka listener needs from host/security, and each connection's SASL session.
//
// One KafkaSecurity per listener: the `security` options, the one Authorizer (ACLs read from the
// metadata image on every decision), the failed-login limiter, and the metadata store that
// CreateAcls/DeleteAcls and AlterUserScramCredentials propose records to.
//
// A session per connection (Kafka's SASL state, KIP-368 for re-authentication):
//   start ──SaslHandshake(mech)──> handshaken ──SaslAuthenticate──> done      (PLAIN, OAUTHBEARER: one step)
//                                        └──SaslAuthenticate(client-first)──> scram ──(client-final)──> done
//        └──SaslAuthenticate(node id)──> scram ──(signature)──> done          (TRIBUTARY-NODE: another node)
//   done ──(session lifetime passes)──> only SaslHandshake/SaslAuthenticate may follow, else the
//   connection is closed; done ──SaslHandshake──> handshaken (re-authentication: the principal must stay the same).
// A failed SaslAuthenticate is answered (SASL_AUTHENTICATION_FAILED) and the connection closed,
// as Kafka does. Before authenticating, a client is `User:ANONYMOUS`, and may send other requests
// only when anonymous clients are allowed (security.allowAnonymous, or null on a loopback listener).
import { randomBytes } from 'node:crypto';
import type { MetadataStore } from '../broker/metadata/store.js';
import { ANONYMOUS, Authorizer, doorSecurity, isLoopback, LoginLimiter, type DoorSecurity, type OAuthBearerVerifier, type Principal, type ScramServer, type SecurityOptions } from '../security/index.js';

export interface KafkaSecurity {
  options: SecurityOptions;
  authorizer: Authorizer;
  limiter: LoginLimiter;
  /** SASL/OAUTHBEARER's token checker; null = not offered. */
  oauth: OAuthBearerVerifier | null;
  /** Where ACLs and SCRAM credentials live; absent in listeners started without a metadata store (then the security APIs answer SECURITY_DISABLED). */
  store: MetadataStore | undefined;
  /** Secret for unknown users' fake SCRAM salts (never leaves the process). */
  fakeSecret: Uint8Array;
}

/**
 * The listener's security from the `security` options and the broker's metadata store. A node
 * passes the DoorSecurity every door shares (one authorizer, one failed-login limiter).
 */
export function kafkaSecurity(options: Partial<SecurityOptions> | undefined, store: MetadataStore | undefined, shared?: DoorSecurity): KafkaSecurity {
  const doors = shared ?? doorSecurity(options, () => store?.image());
  return {
    options: doors.options,
    authorizer: doors.authorizer,
    limiter: doors.limiter,
    oauth: doors.oauth,
    store,
    fakeSecret: randomBytes(32),
  };
}

/** Anonymous clients may use the listener on `host` (Mosquitto's rule: only on loopback unless told). */
export function anonymousAllowed(o: SecurityOptions, host: string): boolean {
  return o.allowAnonymous ?? isLoopback(host);
}

export class SaslSession {
  principal: Principal = ANONYMOUS;
  state: 'start' | 'handshaken' | 'scram' | 'done' = 'start';
  mechanism: string | null = null;
  scram: ScramServer | null = null;
  /** When the authenticated session ends (0 = never); re-authentication moves it. */
  expiresAtMs = 0;
  /** Authenticated at least once (re-authentication must keep the principal). */
  authenticated = false;
  /** The principal came from a verified client certificate (mutual TLS); a SASL login may still replace it. */
  byCertificate = false;
  /**
   * Another node of the cluster proved itself (TRIBUTARY-NODE, host/security/node-identity.ts):
   * its id. Such a session may append to internal topics; null for every client.
   */
  interNodeId: number | null = null;
  /** TRIBUTARY-NODE between its two rounds: who claims to ask, and the challenge sent. */
  nodeChallenge: { from: number; nonce: Uint8Array } | null = null;

  constructor(readonly anonymousOk: boolean) {}

  /** Mutual TLS: the certificate's subject is the principal until (unless) the client logs in with SASL. */
  authenticateByCertificate(principal: Principal): void {
    this.principal = principal;
    this.byCertificate = true;
  }

  /** May a request other than ApiVersions/SaslHandshake/SaslAuthenticate run now? Else why not. */
  refusal(nowMs: number): string | null {
    if (this.state === 'handshaken' || this.state === 'scram') return 'a SASL exchange is in progress';
    if (!this.authenticated && !this.byCertificate) return this.anonymousOk ? null : 'authentication required (SASL): anonymous clients are not allowed on this listener (security.allowAnonymous)';
    if (this.expiresAtMs > 0 && nowMs >= this.expiresAtMs) return 'the SASL session expired (security.reauthMs) and the client did not re-authenticate (KIP-368)';
    return null;
  }
}
