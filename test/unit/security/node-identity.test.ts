// Purpose: the inter-node proof (host/security/node-identity.ts) verifies only for the key, the
// sender, the receiver and the challenge it was made for — so a proof cannot be replayed on
// another node or in another exchange, nor made without the sender's private key.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { nodeIdentity, nodeNonce, NODE_NONCE_BYTES, verifyNodeProof } from '../../../host/security/node-identity.js';

t.test('node identity: a proof verifies for its key, sender, receiver and nonce only', { timeout: 10_000 }, async (t) => {
  const me = nodeIdentity();
  t.equal(nodeIdentity(), me, 'one identity per process');
  const nonce = nodeNonce();
  t.equal(nonce.byteLength, NODE_NONCE_BYTES, 'the challenge has NODE_NONCE_BYTES random bytes');
  t.not(Buffer.from(nodeNonce()).toString('hex'), Buffer.from(nonce).toString('hex'), 'a new challenge per exchange');
  const proof = me.prove(2, 1, nonce);
  t.ok(verifyNodeProof(me.publicKey, 2, 1, nonce, proof), 'the proof verifies with the registered key');
  t.notOk(verifyNodeProof(me.publicKey, 3, 1, nonce, proof), 'not as another sender');
  t.notOk(verifyNodeProof(me.publicKey, 2, 3, nonce, proof), 'not on another receiver (no replay across nodes)');
  t.notOk(verifyNodeProof(me.publicKey, 2, 1, nodeNonce(), proof), 'not for another challenge (no replay across exchanges)');
  const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  t.notOk(verifyNodeProof(other, 2, 1, nonce, proof), "not under another node's key");
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  t.notOk(verifyNodeProof(rsa, 2, 1, nonce, proof), 'a registered key of another type never verifies');
  t.notOk(verifyNodeProof('not base64 der', 2, 1, nonce, proof), 'a malformed key never verifies (no throw)');
  t.notOk(verifyNodeProof(me.publicKey, 2, 1, nonce, 'garbage'), 'a malformed proof never verifies (no throw)');
});
