// SCRAM (RFC 5802; SHA-256 per RFC 7677, SHA-512 as Kafka uses it), the server side, with
// node:crypto only (pbkdf2 = Hi(), HMAC, hash). No password is ever stored: a credential is
// (salt, iterations, StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
// HMAC(SaltedPassword, "Server Key")), which can check a proof but not produce one.
//
// Exchange (one SaslAuthenticate each way, Kafka's framing):
//   client-first  gs2-header "n,," (or "n,a=<authzid>,") + bare "n=<user>,r=<client nonce>[,ext]"
//   server-first  "r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>"
//   client-final  "c=<base64 gs2-header>,r=<nonce>,p=<base64 ClientProof>"
//   server-final  "v=<base64 ServerSignature>"
// AuthMessage = bare-client-first "," server-first "," client-final-without-proof. The server
// recovers ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) and accepts when H(ClientKey)
// equals StoredKey (compared in constant time).
//
// An unknown user gets a server-first made from a per-process secret (salt derived from the
// name), so the first message does not tell whether a user exists (RFC 5802 §5.1 suggests it);
// the proof then fails like a wrong password. Channel binding is not offered (gs2 flag "n"
// only: "y" and "p" are refused). Passwords are not SASLprep-normalised: the client's bytes are
// taken as UTF-8 as sent (Kafka's Java server does the same).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export type ScramMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
/** SHA-1 exists for RFC 5802's own test vector only; no listener offers it. */
export type ScramHash = 'sha1' | 'sha256' | 'sha512';

export const SCRAM_MECHANISMS: readonly ScramMechanism[] = ['SCRAM-SHA-256', 'SCRAM-SHA-512'];
/** Kafka's wire numbers for the mechanisms (Describe/AlterUserScramCredentials). */
export const SCRAM_MECHANISM_CODES: Readonly<Record<ScramMechanism, number>> = { 'SCRAM-SHA-256': 1, 'SCRAM-SHA-512': 2 };
/** Kafka's bounds for iterations (ScramMechanism.minIterations; 16384 is its upper bound). */
export const SCRAM_ITERATIONS_MIN = 4096;
export const SCRAM_ITERATIONS_MAX = 16384;

export function hashOf(mechanism: ScramMechanism): ScramHash {
  return mechanism === 'SCRAM-SHA-256' ? 'sha256' : 'sha512';
}

export function mechanismOfCode(code: number): ScramMechanism | undefined {
  return (Object.entries(SCRAM_MECHANISM_CODES) as [ScramMechanism, number][]).find(([, c]) => c === code)?.[0];
}

const KEY_BYTES: Record<ScramHash, number> = { sha1: 20, sha256: 32, sha512: 64 };

export interface ScramCredential {
  mechanism: ScramMechanism;
  salt: Uint8Array;
  iterations: number;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

const hmac = (hash: ScramHash, key: Uint8Array, text: string | Uint8Array) => createHmac(hash, key).update(text).digest();
const digest = (hash: ScramHash, data: Uint8Array) => createHash(hash).update(data).digest();

/** Hi(password, salt, i) of RFC 5802 §2.2: PBKDF2 with HMAC-H, one block. */
export function saltedPassword(hash: ScramHash, password: string, salt: Uint8Array, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, KEY_BYTES[hash], hash);
}

/** StoredKey and ServerKey from a salted password (AlterUserScramCredentials sends the salted password). */
export function keysFromSalted(hash: ScramHash, salted: Uint8Array): { storedKey: Buffer; serverKey: Buffer } {
  return { storedKey: digest(hash, hmac(hash, salted, 'Client Key')), serverKey: hmac(hash, salted, 'Server Key') };
}

/** A new credential for a password (random 32-byte salt). */
export function makeCredential(mechanism: ScramMechanism, password: string, iterations: number, salt: Uint8Array = randomBytes(32)): ScramCredential {
  const hash = hashOf(mechanism);
  return { mechanism, salt, iterations, ...keysFromSalted(hash, saltedPassword(hash, password, salt, iterations)) };
}

/** Does `password` match the credential? (SASL/PLAIN checks against the stored SCRAM keys.) */
export function passwordMatches(c: ScramCredential, password: string): boolean {
  const hash = hashOf(c.mechanism);
  const { storedKey } = keysFromSalted(hash, saltedPassword(hash, password, c.salt, c.iterations));
  return storedKey.length === c.storedKey.length && timingSafeEqual(storedKey, c.storedKey);
}

export class ScramError extends Error {}

/** `=2C` → `,`, `=3D` → `=` (RFC 5802 §5.1 saslname); any other `=` is malformed. */
function decodeSaslName(s: string): string {
  if (/=(?!2C|3D)/.test(s)) throw new ScramError('malformed user name');
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    if (part.length < 2 || part[1] !== '=') throw new ScramError(`malformed attribute "${part.slice(0, 20)}"`);
    if (!out.has(part[0])) out.set(part[0], part.slice(2));
  }
  return out;
}

export interface ScramServerOptions {
  mechanism: ScramMechanism;
  hash?: ScramHash; // default: the mechanism's (tests pass sha1 for RFC 5802's vector)
  /** Finds a user's credential for this mechanism; undefined = unknown user. */
  lookup(user: string): ScramCredential | undefined;
  /** Fixed server nonce (tests reproducing the RFC vectors); random 24 bytes otherwise. */
  serverNonce?: string;
  /** Secret for unknown users' fake salts (per process). */
  fakeSecret: Uint8Array;
  /** Iterations shown to unknown users. */
  fakeIterations: number;
}

/** One SCRAM exchange: `first(clientFirst)` → server-first, then `final(clientFinal)` → server-final or ScramError. */
export class ScramServer {
  private state: 'start' | 'sentFirst' | 'done' | 'failed' = 'start';
  private user = '';
  private credential: ScramCredential | undefined;
  private bareClientFirst = '';
  private serverFirst = '';
  private nonce = '';
  private gs2 = '';
  private readonly hash: ScramHash;

  constructor(private readonly o: ScramServerOptions) {
    this.hash = o.hash ?? hashOf(o.mechanism);
  }

  get username(): string {
    return this.user;
  }

  first(message: string): string {
    if (this.state !== 'start') throw new ScramError('client-first message out of order');
    this.state = 'failed';
    const m = /^([nyp])(=[^,]*)?,(a=[^,]*)?,(.*)$/s.exec(message);
    if (!m) throw new ScramError('malformed client-first message');
    if (m[1] !== 'n') throw new ScramError('channel binding is not supported');
    this.gs2 = message.slice(0, message.length - m[4].length);
    this.bareClientFirst = m[4];
    const attrs = attributes(m[4]);
    if (m[4].startsWith('m=')) throw new ScramError('mandatory extensions are not supported');
    const name = attrs.get('n');
    const clientNonce = attrs.get('r');
    if (!name || !clientNonce || !m[4].startsWith('n=')) throw new ScramError('client-first message lacks n= or r=');
    if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce)) throw new ScramError('client nonce has characters outside printable ASCII');
    this.user = decodeSaslName(name);
    const authzid = m[3] ? decodeSaslName(m[3].slice(2)) : '';
    if (authzid !== '' && authzid !== this.user) throw new ScramError('authorization id differs from the user name');
    this.credential = this.o.lookup(this.user);
    const salt = this.credential?.salt ?? hmac('sha256', this.o.fakeSecret, `salt:${this.user}`);
    const iterations = this.credential?.iterations ?? this.o.fakeIterations;
    this.nonce = clientNonce + (this.o.serverNonce ?? randomBytes(24).toString('base64'));
    this.serverFirst = `r=${this.nonce},s=${Buffer.from(salt).toString('base64')},i=${iterations}`;
    this.state = 'sentFirst';
    return this.serverFirst;
  }

  final(message: string): string {
    if (this.state !== 'sentFirst') throw new ScramError('client-final message out of order');
    this.state = 'failed';
    const proofAt = message.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError('client-final message lacks p=');
    const withoutProof = message.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get('c') !== Buffer.from(this.gs2).toString('base64')) throw new ScramError('channel binding data does not match the client-first message');
    // Ends with, not equals: librdkafka (2.x) sends its own nonce again in front of the combined
    // one, and Kafka's server accepts that (endsWith in ScramSaslServer), so we must too. The
    // proof covers the message as sent, so nothing is weakened: the server's part must be there.
    const nonce = attrs.get('r');
    if (nonce === undefined || !nonce.endsWith(this.nonce)) throw new ScramError('nonce does not match');
    const proof = Buffer.from(message.slice(proofAt + 3), 'base64');
    const c = this.credential;
    const authMessage = `${this.bareClientFirst},${this.serverFirst},${withoutProof}`;
    if (!c || proof.length !== c.storedKey.length) throw new ScramError('authentication failed');
    const signature = hmac(this.hash, c.storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ signature[i];
    if (!timingSafeEqual(digest(this.hash, clientKey), c.storedKey)) throw new ScramError('authentication failed');
    this.state = 'done';
    return `v=${hmac(this.hash, c.serverKey, authMessage).toString('base64')}`;
  }
}

/**
 * The client side of one SCRAM exchange, for the CLI and the tests and bench: `first()` →
 * client-first, `final(serverFirst)` → client-final, `verify(serverFinal)` checks the server's
 * signature (a server without the user's keys cannot produce it).
 */
export class ScramClient {
  private readonly clientNonce: string;
  private bare = '';
  private authMessage = '';
  private salted: Buffer = Buffer.alloc(0);
  private readonly hash: ScramHash;

  constructor(
    private readonly user: string,
    private readonly password: string,
    mechanism: ScramMechanism,
    nonce?: string,
    hash?: ScramHash,
  ) {
    this.hash = hash ?? hashOf(mechanism);
    this.clientNonce = nonce ?? randomBytes(18).toString('base64');
  }

  first(): string {
    this.bare = `n=${this.user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${this.clientNonce}`;
    return `n,,${this.bare}`;
  }

  final(serverFirst: string): string {
    const a = attributes(serverFirst);
    const nonce = a.get('r') ?? '';
    if (!nonce.startsWith(this.clientNonce)) throw new ScramError('server nonce does not extend ours');
    const iterations = Number(a.get('i'));
    if (!Number.isInteger(iterations) || iterations < 1) throw new ScramError('bad iteration count');
    this.salted = saltedPassword(this.hash, this.password, Buffer.from(a.get('s') ?? '', 'base64'), iterations);
    const withoutProof = `c=biws,r=${nonce}`;
    this.authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const clientKey = hmac(this.hash, this.salted, 'Client Key');
    const signature = hmac(this.hash, digest(this.hash, clientKey), this.authMessage);
    for (let i = 0; i < clientKey.length; i++) clientKey[i] ^= signature[i];
    return `${withoutProof},p=${clientKey.toString('base64')}`;
  }

  verify(serverFinal: string): boolean {
    const expected = hmac(this.hash, hmac(this.hash, this.salted, 'Server Key'), this.authMessage).toString('base64');
    return serverFinal === `v=${expected}`;
  }
}
