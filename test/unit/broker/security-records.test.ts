// Purpose: ACLs and SCRAM credentials are metadata records (host/broker/metadata/records.ts):
// applied purely, made durable in security.json by the one-node store (0600, whole state per
// write, survives a reopen), never mixed with a topics.json change in one proposal, and an
// unreadable security.json stops the store instead of starting with no ACLs.
import t from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileMetadataStore } from '../../../host/broker/metadata/file-store.js';
import { applyRecords, EMPTY_IMAGE, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import { makeCredential, Operation, PatternType, Permission, ResourceType, type AclBinding } from '../../../host/security/index.js';
import { tempDir } from '../../helpers/index.js';

const binding: AclBinding = { resourceType: ResourceType.TOPIC, resourceName: 'orders', patternType: PatternType.LITERAL, principal: 'User:alice', host: '*', operation: Operation.READ, permission: Permission.ALLOW };
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

function scramRecord(user: string): MetadataRecord {
  const c = makeCredential('SCRAM-SHA-512', 'pw', 4096);
  return { type: 'scramCredential', user, mechanism: c.mechanism, iterations: c.iterations, salt: b64(c.salt), storedKey: b64(c.storedKey), serverKey: b64(c.serverKey) };
}

t.test('security records: applied purely; adding a binding twice keeps one; removal by every field', async (t) => {
  const a = applyRecords(EMPTY_IMAGE, [{ type: 'acl', binding }, { type: 'acl', binding: { ...binding } }, scramRecord('alice')]);
  t.equal(a.acls.length, 1);
  t.equal(EMPTY_IMAGE.acls.length, 0, 'the input image is untouched');
  t.equal(a.scram.get('alice')?.get('SCRAM-SHA-512')?.iterations, 4096);
  const b = applyRecords(a, [{ type: 'removeAcl', binding: { ...binding, host: '10.0.0.1' } }]);
  t.equal(b.acls.length, 1, 'a binding differing in one field is not removed');
  const c = applyRecords(b, [{ type: 'removeAcl', binding }, { type: 'removeScramCredential', user: 'alice', mechanism: 'SCRAM-SHA-512' }]);
  t.equal(c.acls.length, 0);
  t.notOk(c.scram.has('alice'), 'a user without credentials is gone');
});

t.test('security records: durable in security.json (0600), the same image after a reopen', async (t) => {
  const dir = await tempDir(t);
  const store = await FileMetadataStore.open(dir);
  await store.propose([{ type: 'acl', binding }, scramRecord('alice')]);
  const text = await readFile(join(dir, 'security.json'), 'utf8');
  t.match(text, /^\{"format":1,"acls":\[/);
  t.notMatch(text, /"pw"/, 'no password on disk');
  t.equal((await stat(join(dir, 'security.json'))).mode & 0o777, 0o600);
  const before = store.image();
  const again = await FileMetadataStore.open(dir);
  t.same(again.image().acls, before.acls);
  t.same([...again.image().scram.get('alice')!.values()].map((c) => b64(c.storedKey)), [...before.scram.get('alice')!.values()].map((c) => b64(c.storedKey)));
  await t.rejects(store.propose([{ type: 'acl', binding: { ...binding, resourceName: 'x' } }, { type: 'topic', name: 't', topicId: 'id', partitions: 1, replicationFactor: 1, assignment: [[0]], createdMs: 0 }]), /cannot change both/);
  t.equal(store.image().acls.length, 1, 'the refused mixed proposal changed nothing');
});

t.test('security records: an unreadable security.json stops the store', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'security.json'), '{"format":1,"acls":[');
  await t.rejects(FileMetadataStore.open(dir), /security file .* is unreadable/);
});
