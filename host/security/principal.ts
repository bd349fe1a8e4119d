// Who is asking. Every door turns its credentials into one Principal — Kafka SASL, MQTT
// username/password, HTTP/WS bearer tokens, registry Basic auth (client certificates when TLS
// brings them) — and every decision is made on that value alone (Kafka's KafkaPrincipal).
//
// Text form, as Kafka writes it in ACLs and `super.users`: `User:<name>`. A client that did not
// authenticate is `User:ANONYMOUS` (Kafka's name), so ACLs can grant anonymous clients exactly
// what the configuration means them to have.

export interface Principal {
  readonly type: 'User';
  readonly name: string;
}

export const ANONYMOUS: Principal = Object.freeze({ type: 'User', name: 'ANONYMOUS' });

/** `User:alice` for a user name. */
export function userPrincipal(name: string): Principal {
  return { type: 'User', name };
}

export function principalText(p: Principal): string {
  return `${p.type}:${p.name}`;
}

/** Parses `User:name` (the only principal type); undefined when the text is not one. */
export function parsePrincipal(text: string): Principal | undefined {
  if (typeof text !== 'string') return undefined;
  const colon = text.indexOf(':');
  if (colon <= 0 || text.slice(0, colon) !== 'User' || colon === text.length - 1) return undefined;
  return { type: 'User', name: text.slice(colon + 1) };
}

export function isAnonymous(p: Principal): boolean {
  return p.type === ANONYMOUS.type && p.name === ANONYMOUS.name;
}

/**
 * The principal of a client certificate, as Kafka's default `ssl.principal.mapping.rules`
 * (DEFAULT) names it: `User:` + the subject's distinguished name in RFC 2253 form, most specific
 * attribute first (`User:CN=sensor-1,OU=plant,O=acme`). `subject` is node's
 * X509Certificate.subject: one `ATTR=value` per line, least specific first, values already escaped.
 */
export function principalFromCertificateSubject(subject: string): Principal {
  const parts = subject.split('\n').filter((l) => l.length > 0);
  return { type: 'User', name: parts.reverse().join(',') };
}
