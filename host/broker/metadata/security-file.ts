// The durable ACLs and SCRAM credentials of a one-node store: `<dataDir>/security.json`.
//
// On-disk format: one JSON document, `{"format":1,"acls":[AclBinding...],"scram":[{"user",
// "mechanism","iterations","salt","storedKey","serverKey"}...]}\n`, the three byte fields in
// base64. The file holds the whole security state (it is small: bindings and one credential per
// user and mechanism), rewritten on each change. No password is in it: StoredKey and ServerKey
// can check a SCRAM proof but cannot log in (RFC 5802 §3); the file is still created 0600
// (a leftover .tmp is removed first, so the new one is created with that mode).
//
// Crash policy: a write goes to `security.json.tmp`, is fsynced, renamed over the file, and the
// directory is fsynced (writeDurably), so after a power cut the file holds the state before or
// after the change, never a mix. A leftover `.tmp` is an unfinished write and is ignored. A
// missing file means no ACLs and no users. An unreadable file stops the broker with an error
// naming it: starting with no ACLs could open what the operator closed.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurably } from '../topic-registry.js';
import type { AclBinding } from '../../security/index.js';
import type { MetadataImage, SecurityRecord } from './records.js';

export const SECURITY_FILE = 'security.json';
const FORMAT = 1;

/** Reads `<dataDir>/security.json` as the records that rebuild it (empty when absent). */
export async function readSecurityFile(dataDir: string): Promise<SecurityRecord[]> {
  const path = join(dataDir, SECURITY_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let doc: { format?: unknown; acls?: unknown; scram?: unknown };
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`security file ${path} is unreadable; refusing to start without its ACLs and users`);
  }
  if (doc.format !== FORMAT || !Array.isArray(doc.acls) || !Array.isArray(doc.scram)) throw new Error(`security file ${path} has an unexpected content: ${text.slice(0, 100)}`);
  const records: SecurityRecord[] = (doc.acls as AclBinding[]).map((binding) => ({ type: 'acl', binding }));
  for (const c of doc.scram as Array<Record<string, unknown>>) {
    records.push({ type: 'scramCredential', user: String(c.user), mechanism: c.mechanism as never, iterations: Number(c.iterations), salt: String(c.salt), storedKey: String(c.storedKey), serverKey: String(c.serverKey) });
  }
  return records;
}

/** Writes the image's security state durably (see the crash policy above). */
export async function writeSecurityFile(dataDir: string, image: MetadataImage): Promise<void> {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  const scram = [];
  for (const [user, byMechanism] of image.scram) {
    for (const c of byMechanism.values()) scram.push({ user, mechanism: c.mechanism, iterations: c.iterations, salt: b64(c.salt), storedKey: b64(c.storedKey), serverKey: b64(c.serverKey) });
  }
  await rm(join(dataDir, `${SECURITY_FILE}.tmp`), { force: true });
  await writeDurably(dataDir, JSON.stringify({ format: FORMAT, acls: image.acls, scram }) + '\n', SECURITY_FILE, 0o600);
}
