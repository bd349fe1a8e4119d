// DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), version 0,
// flexible (KIP-554).
//   Describe: users[name] (null = every user); response throttle_time_ms, error_code,
//             error_message, results[user, error_code, error_message, credential_infos[mechanism, iterations]]
//   Alter:    deletions[name, mechanism], upsertions[name, mechanism, iterations, salt,
//             salted_password]; response throttle_time_ms, results[user, error_code, error_message]
// The client sends the salted password (PBKDF2 done client-side, KIP-554), never the password;
// the broker keeps only StoredKey and ServerKey derived from it. Describe needs DESCRIBE on the
// cluster, Alter ALTER (CLUSTER_AUTHORIZATION_FAILED). Mechanisms: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512;
// iterations within Kafka's 4096..16384 (else UNACCEPTABLE_CREDENTIAL); an unknown user in
// Describe or a missing credential in a deletion is RESOURCE_NOT_FOUND; a user named twice in
// one Alter is DUPLICATE_RESOURCE, as Kafka answers.
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { hashOf, keysFromSalted, mechanismOfCode, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_MECHANISM_CODES } from '../../security/index.js';
import type { MetadataRecord } from '../../broker/metadata/records.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { clusterAllowed, clusterDenied, Operation } from './authz.js';

const describeRequest: Schema = [arr('users', '0+', [f('name', 'string', '0+')], { nullable: '0+' })];
const describeResponse: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  f('errorCode', 'int16', '0+'),
  f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
  arr('results', '0+', [
    f('user', 'string', '0+'),
    f('errorCode', 'int16', '0+'),
    f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
    arr('credentialInfos', '0+', [f('mechanism', 'int8', '0+'), f('iterations', 'int32', '0+')]),
  ]),
];

const alterRequest: Schema = [
  arr('deletions', '0+', [f('name', 'string', '0+'), f('mechanism', 'int8', '0+')]),
  arr('upsertions', '0+', [f('name', 'string', '0+'), f('mechanism', 'int8', '0+'), f('iterations', 'int32', '0+'), f('salt', 'bytes', '0+'), f('saltedPassword', 'bytes', '0+')]),
];
const alterResponse: Schema = [f('throttleTimeMs', 'int32', '0+'), arr('results', '0+', [f('user', 'string', '0+'), f('errorCode', 'int16', '0+'), f('errorMessage', 'string', '0+', { nullable: '0+', default: null })])];

export const describeUserScramCredentials: ApiHandler = {
  apiKey: 50,
  name: 'DescribeUserScramCredentials',
  minVersion: 0,
  maxVersion: 0,
  flexibleFrom: 0,
  request: describeRequest,
  response: describeResponse,
  async handle(req: { users: Array<{ name: string }> | null }, ctx: RequestContext) {
    const fail = (err: unknown) => ({ throttleTimeMs: 0, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), results: [] });
    if (!clusterAllowed(ctx, Operation.DESCRIBE)) return fail(clusterDenied(ctx, Operation.DESCRIBE));
    const store = ctx.security.store;
    if (!store) return fail(new BrokerError('SECURITY_DISABLED', 'this listener has no metadata store for credentials'));
    const scram = store.image().scram;
    const names = req.users === null || req.users.length === 0 ? [...scram.keys()] : req.users.map((u) => u.name);
    const counts = new Map<string, number>();
    for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
    const results = [...new Set(names)].map((user) => {
      const creds = scram.get(user);
      if (counts.get(user)! > 1) return { user, errorCode: ERRORS.DUPLICATE_RESOURCE.kafka, errorMessage: `user ${user} is named more than once`, credentialInfos: [] };
      if (!creds) return { user, errorCode: ERRORS.RESOURCE_NOT_FOUND.kafka, errorMessage: `attempt to describe a user credential that does not exist: ${user}`, credentialInfos: [] };
      return { user, errorCode: ERRORS.NONE.kafka, errorMessage: null, credentialInfos: [...creds.values()].map((c) => ({ mechanism: SCRAM_MECHANISM_CODES[c.mechanism], iterations: c.iterations })) };
    });
    return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, errorMessage: null, results };
  },
};

interface AlterRequest {
  deletions: Array<{ name: string; mechanism: number }>;
  upsertions: Array<{ name: string; mechanism: number; iterations: number; salt: Uint8Array; saltedPassword: Uint8Array }>;
}

/** The records for one user's changes, or a BrokerError naming what is wrong. */
function userRecords(ctx: RequestContext, user: string, req: AlterRequest): MetadataRecord[] {
  const existing = ctx.security.store!.image().scram.get(user);
  const records: MetadataRecord[] = [];
  for (const d of req.deletions.filter((d) => d.name === user)) {
    const mechanism = mechanismOfCode(d.mechanism);
    if (!mechanism) throw new BrokerError('UNSUPPORTED_SASL_MECHANISM', `unknown SCRAM mechanism ${d.mechanism} (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512)`);
    if (!existing?.has(mechanism)) throw new BrokerError('RESOURCE_NOT_FOUND', `attempt to delete a user credential that does not exist: ${user} ${mechanism}`);
    records.push({ type: 'removeScramCredential', user, mechanism });
  }
  for (const u of req.upsertions.filter((u) => u.name === user)) {
    const mechanism = mechanismOfCode(u.mechanism);
    if (!mechanism) throw new BrokerError('UNSUPPORTED_SASL_MECHANISM', `unknown SCRAM mechanism ${u.mechanism} (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512)`);
    if (!Number.isInteger(u.iterations) || u.iterations < SCRAM_ITERATIONS_MIN || u.iterations > SCRAM_ITERATIONS_MAX) {
      throw new BrokerError('UNACCEPTABLE_CREDENTIAL', `iterations ${u.iterations} outside ${SCRAM_ITERATIONS_MIN}..${SCRAM_ITERATIONS_MAX}`);
    }
    if (!u.salt || u.salt.length === 0 || !u.saltedPassword || u.saltedPassword.length === 0) throw new BrokerError('UNACCEPTABLE_CREDENTIAL', 'salt and salted password must not be empty');
    const { storedKey, serverKey } = keysFromSalted(hashOf(mechanism), u.saltedPassword);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    records.push({ type: 'scramCredential', user, mechanism, iterations: u.iterations, salt: b64(u.salt), storedKey: b64(storedKey), serverKey: b64(serverKey) });
  }
  return records;
}

export const alterUserScramCredentials: ApiHandler = {
  apiKey: 51,
  name: 'AlterUserScramCredentials',
  minVersion: 0,
  maxVersion: 0,
  flexibleFrom: 0,
  request: alterRequest,
  response: alterResponse,
  async handle(req: AlterRequest, ctx: RequestContext) {
    const users = [...new Set([...req.deletions.map((d) => d.name), ...req.upsertions.map((u) => u.name)])];
    const results = [];
    for (const user of users) {
      try {
        if (!clusterAllowed(ctx, Operation.ALTER)) throw clusterDenied(ctx, Operation.ALTER);
        if (!ctx.security.store) throw new BrokerError('SECURITY_DISABLED', 'this listener has no metadata store for credentials');
        if (typeof user !== 'string' || user === '') throw new BrokerError('UNACCEPTABLE_CREDENTIAL', 'user name is empty');
        const mechanisms = [...req.deletions.filter((d) => d.name === user), ...req.upsertions.filter((u) => u.name === user)].map((x) => x.mechanism);
        if (new Set(mechanisms).size !== mechanisms.length) throw new BrokerError('DUPLICATE_RESOURCE', `user ${user} has more than one change for the same mechanism in this request`);
        const records = userRecords(ctx, user, req);
        await ctx.security.store.propose(records);
        // The user name only: salts and keys are never logged.
        ctx.logger.info({ by: ctx.principalText, user, changes: records.map((r) => `${r.type}:${(r as { mechanism: string }).mechanism}`) }, 'SCRAM credentials altered');
        results.push({ user, errorCode: ERRORS.NONE.kafka, errorMessage: null });
      } catch (err) {
        results.push({ user, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err) });
      }
    }
    return { throttleTimeMs: 0, results };
  },
};
