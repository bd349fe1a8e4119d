// How one node of a cluster proves, on another node's Kafka listener, that it is a node of the
// cluster: the inter-node identity behind forwarded appends (host/cluster/forward.ts), internal topics
// included — the only way an internal write made on one node reaches the leader on another.
//
// Each process makes an Ed25519 key pair at start (kept in memory only: a restart is a new
// broker incarnation and a new key). Its public key travels in the node's `brokerRegistration`
// metadata record (host/broker/metadata/records.ts), so every node learns it through the
// metadata quorum — the inter-node listener's trust boundary (mutual TLS with `cluster.tls`, or a
// private network). The private key never leaves the process, and the public key is no secret:
// the status shows it, logs may.
//
// SASL mechanism TRIBUTARY-NODE over SaslHandshake v1 + SaslAuthenticate (two rounds, like SCRAM):
//   client → "<fromNodeId>"                       (decimal)
//   server → "<nonce>"                            (32 random bytes, base64; new per exchange)
//   client → "<signature>"                        (base64 Ed25519 over PROOF_CONTEXT 0x00 from 0x00 to 0x00 nonce)
//   server → ""                                   (or SASL_AUTHENTICATION_FAILED, connection closed)
// The server checks the signature with the key its own metadata image holds for `from` (a
// registered, unfenced broker) and that `to` is itself, so a proof made for one node cannot be
// replayed on another, nor a captured one on a later exchange (the nonce). The connection's
// principal is then `User:cluster-node-<from>`, and the session is marked inter-node: it may
// append to internal topics (Kafka's CLUSTER_ACTION, which no client principal has) and its
// appends are not authorized again (the door that took the client's write authorized it). The
// mechanism is never listed to clients and is refused on a listener that is not a cluster's.
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

export const NODE_SASL_MECHANISM = 'TRIBUTARY-NODE';
const PROOF_CONTEXT = 'tributary-node-proof-v1';
/** Bytes of the server's challenge. */
export const NODE_NONCE_BYTES = 32;

export interface NodeIdentity {
  /** SPKI DER, base64: what the registration record carries. */
  readonly publicKey: string;
  /** The answer to a challenge from node `to`. */
  prove(from: number, to: number, nonce: Uint8Array): string;
}

let identity: NodeIdentity | undefined;

/** This process's identity (made once per process). */
export function nodeIdentity(): NodeIdentity {
  if (identity) return identity;
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const priv: KeyObject = privateKey;
  identity = {
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    prove: (from, to, nonce) => sign(null, proofMessage(from, to, nonce), priv).toString('base64'),
  };
  return identity;
}

function proofMessage(from: number, to: number, nonce: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${PROOF_CONTEXT}\u0000${from}\u0000${to}\u0000`, 'utf8'), nonce]);
}

/** A fresh challenge for one exchange. */
export function nodeNonce(): Uint8Array {
  return randomBytes(NODE_NONCE_BYTES);
}

/** True when `signature` (base64) is `from`'s proof for node `to` and this nonce under `publicKey` (base64 SPKI DER). */
export function verifyNodeProof(publicKey: string, from: number, to: number, nonce: Uint8Array, signature: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, proofMessage(from, to, nonce), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** The principal a node authenticates as (a name no SCRAM user can shadow: the session flag decides, not the name). */
export function nodePrincipalName(nodeId: number): string {
  return `cluster-node-${nodeId}`;
}
