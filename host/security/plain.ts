// SASL/PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL passwd`, UTF-8. Checked against
// the user's stored SCRAM keys (scram.ts passwordMatches), so PLAIN needs no password store of
// its own. PLAIN sends the password itself: without TLS it crosses the network in the clear, which
// docs/security.md says; SCRAM never does.

export interface PlainMessage {
  user: string;
  password: string;
}

/** Parses a PLAIN message; undefined when malformed (wrong NUL count, empty user, authzid ≠ user). */
export function parsePlain(bytes: Uint8Array): PlainMessage | undefined {
  const parts = Buffer.from(bytes).toString('utf8').split('\u0000');
  if (parts.length !== 3) return undefined;
  const [authzid, user, password] = parts;
  if (user === '' || password === '' || (authzid !== '' && authzid !== user)) return undefined;
  return { user, password };
}
