// Purpose: the SCRAM server (host/security/scram.ts) is RFC 5802/7677 SCRAM: it reproduces the
// RFCs' own example exchanges byte for byte (server-first and server-final from the same nonces),
// refuses a wrong proof, a changed nonce and channel binding, talks to our client for both
// mechanisms, and PLAIN's check against the stored keys accepts only the password.
import t from 'tap';
import { keysFromSalted, makeCredential, parsePlain, passwordMatches, saltedPassword, ScramClient, ScramServer, type ScramCredential, type ScramHash } from '../../../host/security/index.js';

const FAKE = Buffer.alloc(32, 7);

function credentialFor(hash: ScramHash, password: string, saltB64: string, iterations: number): ScramCredential {
  const salt = Buffer.from(saltB64, 'base64');
  return { mechanism: hash === 'sha512' ? 'SCRAM-SHA-512' : 'SCRAM-SHA-256', salt, iterations, ...keysFromSalted(hash, saltedPassword(hash, password, salt, iterations)) };
}

const VECTORS = [
  {
    rfc: 'RFC 5802 §5 (SCRAM-SHA-1)',
    hash: 'sha1' as const,
    clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
    serverNonce: '3rfcNHYJY1ZVvWVs7j',
    serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
    salt: 'QSXCR+Q6sek8bf92',
  },
  {
    rfc: 'RFC 7677 §3 (SCRAM-SHA-256)',
    hash: 'sha256' as const,
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  },
];

for (const v of VECTORS) {
  t.test(`scram: the server reproduces ${v.rfc}'s exchange`, async (t) => {
    const cred = credentialFor(v.hash, 'pencil', v.salt, 4096);
    const server = new ScramServer({ mechanism: 'SCRAM-SHA-256', hash: v.hash, lookup: (u) => (u === 'user' ? cred : undefined), serverNonce: v.serverNonce, fakeSecret: FAKE, fakeIterations: 4096 });
    t.equal(server.first(v.clientFirst), v.serverFirst, 'server-first');
    t.equal(server.final(v.clientFinal), v.serverFinal, 'server-final (the server signature)');
    t.equal(server.username, 'user');
  });

  t.test(`scram: ${v.rfc} with one proof bit flipped is refused`, async (t) => {
    const cred = credentialFor(v.hash, 'pencil', v.salt, 4096);
    const server = new ScramServer({ mechanism: 'SCRAM-SHA-256', hash: v.hash, lookup: () => cred, serverNonce: v.serverNonce, fakeSecret: FAKE, fakeIterations: 4096 });
    server.first(v.clientFirst);
    const at = v.clientFinal.indexOf(',p=') + 3;
    const proof = Buffer.from(v.clientFinal.slice(at), 'base64');
    proof[0] ^= 1;
    t.throws(() => server.final(v.clientFinal.slice(0, at) + proof.toString('base64')), { message: 'authentication failed' });
  });

  t.test(`scram: ${v.rfc} with the wrong password's keys is refused`, async (t) => {
    const cred = credentialFor(v.hash, 'pencil2', v.salt, 4096);
    const server = new ScramServer({ mechanism: 'SCRAM-SHA-256', hash: v.hash, lookup: () => cred, serverNonce: v.serverNonce, fakeSecret: FAKE, fakeIterations: 4096 });
    server.first(v.clientFirst);
    t.throws(() => server.final(v.clientFinal), { message: 'authentication failed' });
  });
}

t.test('scram: our client and server agree for both mechanisms; the client checks the server signature', async (t) => {
  for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const) {
    const cred = makeCredential(mechanism, 'correct horse', 4096);
    const server = new ScramServer({ mechanism, lookup: (u) => (u === 'a,b=c' ? cred : undefined), fakeSecret: FAKE, fakeIterations: 4096 });
    const client = new ScramClient('a,b=c', 'correct horse', mechanism);
    const serverFinal = server.final(client.final(server.first(client.first())));
    t.ok(client.verify(serverFinal), `${mechanism}: server signature verified`);
    t.equal(server.username, 'a,b=c', 'saslname escapes =2C and =3D decoded');
    t.notOk(client.verify('v=' + Buffer.alloc(64).toString('base64')), 'a forged server-final is refused');
  }
});

t.test('scram: an unknown user gets a server-first like a known one, then fails like a wrong password', async (t) => {
  const server = new ScramServer({ mechanism: 'SCRAM-SHA-512', lookup: () => undefined, fakeSecret: FAKE, fakeIterations: 8192 });
  const client = new ScramClient('ghost', 'x', 'SCRAM-SHA-512');
  const first = server.first(client.first());
  t.match(first, /^r=[^,]+,s=[A-Za-z0-9+/=]+,i=8192$/);
  t.throws(() => server.final(client.final(first)), { message: 'authentication failed' });
  const again = new ScramServer({ mechanism: 'SCRAM-SHA-512', lookup: () => undefined, fakeSecret: FAKE, fakeIterations: 8192 });
  t.equal(again.first(new ScramClient('ghost', 'x', 'SCRAM-SHA-512').first()).split(',')[1], first.split(',')[1], 'the same fake salt each time (no tell-tale change)');
});

t.test('scram: malformed and out-of-order messages, channel binding, a changed nonce', async (t) => {
  const cred = makeCredential('SCRAM-SHA-256', 'pw', 4096);
  const mk = () => new ScramServer({ mechanism: 'SCRAM-SHA-256', lookup: () => cred, fakeSecret: FAKE, fakeIterations: 4096 });
  t.throws(() => mk().first('y,,n=u,r=abc'), { message: /channel binding/ });
  t.throws(() => mk().first('p=tls-unique,,n=u,r=abc'), { message: /channel binding/ });
  t.throws(() => mk().first('n,,r=abc'), { message: /lacks n= or r=/ });
  t.throws(() => mk().first('garbage'), { message: /malformed/ });
  t.throws(() => mk().first('n,,n=u=,r=abc'), { message: /malformed user name/ });
  t.throws(() => mk().final('c=biws,r=x,p=AAAA'), { message: /out of order/ });
  const s = mk();
  const c = new ScramClient('u', 'pw', 'SCRAM-SHA-256');
  const first = s.first(c.first());
  t.throws(() => s.first(c.first()), { message: /out of order/ });
  const final = c.final(first);
  t.throws(() => s.final(final.replace(/r=([^,]+)/, 'r=$1x')), { message: /nonce/ });
  // librdkafka's repeated client nonce in front of the combined one is accepted by the kcat
  // interop test (test/interop/kafka-security.test.ts), where a real librdkafka computes the proof.
});

t.test('plain: parsing and the check against stored SCRAM keys', async (t) => {
  t.same(parsePlain(Buffer.from('\u0000alice\u0000pw')), { user: 'alice', password: 'pw' });
  t.same(parsePlain(Buffer.from('alice\u0000alice\u0000pw')), { user: 'alice', password: 'pw' });
  t.equal(parsePlain(Buffer.from('bob\u0000alice\u0000pw')), undefined, 'authzid other than the user');
  t.equal(parsePlain(Buffer.from('\u0000alice')), undefined);
  t.equal(parsePlain(Buffer.from('\u0000\u0000pw')), undefined);
  const cred = makeCredential('SCRAM-SHA-512', 'pw', 4096);
  t.ok(passwordMatches(cred, 'pw'));
  t.notOk(passwordMatches(cred, 'pw '));
  t.notOk(JSON.stringify({ ...cred, salt: [...cred.salt], storedKey: [...cred.storedKey], serverKey: [...cred.serverKey] }).includes('"pw"'), 'no password in a credential');
});
