// `tributary users add|list|remove` and `tributary acls add|list|remove`, against a running node
// through its Kafka listener's admin APIs (AlterUserScramCredentials, DescribeUserScramCredentials,
// CreateAcls, DescribeAcls, DeleteAcls), so they work wherever Kafka tooling would.
//
// Connection: --kafka HOST:PORT (or TRIBUTARY_KAFKA; default 127.0.0.1:9092), in TLS with --tls,
// --cacert FILE, --cert FILE --cert-key FILE (or TRIBUTARY_TLS/_CACERT/_CERT/_CERT_KEY; host/admin/tls.ts). Authentication:
// --sasl-user / --sasl-password (or TRIBUTARY_SASL_USER / TRIBUTARY_SASL_PASSWORD), SCRAM-SHA-512;
// none = anonymous (allowed on a loopback listener unless security.allowAnonymous is false).
// Passwords are never printed. Exit codes as the other admin commands: 0 ok, 1 the broker
// refused, 2 bad usage, 3 the broker could not be reached.
import { randomBytes } from 'node:crypto';
import { KafkaAdminConnection } from './kafka-admin.js';
import { saslHandshake } from '../kafka/apis/sasl-handshake.js';
import { saslAuthenticate } from '../kafka/apis/sasl-authenticate.js';
import { createAcls, deleteAcls, describeAcls } from '../kafka/apis/acls.js';
import { alterUserScramCredentials, describeUserScramCredentials } from '../kafka/apis/scram-credentials.js';
import { errorNameForKafkaCode } from '../errors/index.js';
import {
  bindingText,
  CLUSTER_NAME,
  codeOf,
  hashOf,
  mechanismOfCode,
  Operation,
  PatternType,
  Permission,
  ResourceType,
  saltedPassword,
  SCRAM_ITERATIONS_MAX,
  SCRAM_ITERATIONS_MIN,
  SCRAM_MECHANISM_CODES,
  SCRAM_MECHANISMS,
  type AclBinding,
  type ScramMechanism,
} from '../security/index.js';
import { parseArgs } from './args.js';
import { adminTlsOptions, explainTlsError, TLS_FLAGS, tlsFlagValues, wantsTls } from './tls.js';

class UsageError extends Error {}
class Refused extends Error {}

type Flags = Map<string, string | true>;
const BOOLEAN = new Set(['--prefixed', '--deny', '--cluster', '--json', '--tls']);

function parse(argv: string[]): { positional: string[]; flags: Flags } {
  const { positional, flags } = parseArgs(argv, BOOLEAN, (m) => new UsageError(m));
  return { positional, flags: new Map([...flags].map(([name, values]) => [name, BOOLEAN.has(name) ? true : values.at(-1)!])) };
}

const CONNECTION_FLAGS = ['--kafka', '--sasl-user', '--sasl-password', ...TLS_FLAGS];

function only(flags: Flags, allowed: string[]): void {
  for (const name of flags.keys()) if (!allowed.includes(name) && !CONNECTION_FLAGS.includes(name)) throw new UsageError(`unknown option ${name}; options here are ${[...allowed, ...CONNECTION_FLAGS].join(', ')}`);
}

const str = (flags: Flags, name: string): string | undefined => {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
};

const out = (s: string) => void process.stdout.write(s + '\n');
const codeName = (code: number) => errorNameForKafkaCode(code);

async function users(conn: KafkaAdminConnection, sub: string | undefined, name: string | undefined, flags: Flags, defaultIterations: number): Promise<void> {
  if (sub === 'list') {
    only(flags, ['--json']);
    const r = await conn.request<{ errorCode: number; errorMessage: string | null; results: Array<{ user: string; errorCode: number; credentialInfos: Array<{ mechanism: number; iterations: number }> }> }>(describeUserScramCredentials, 0, { users: null });
    if (r.errorCode !== 0) throw new Refused(`${codeName(r.errorCode)}: ${r.errorMessage ?? ''}`);
    if (flags.has('--json')) return out(JSON.stringify(r.results.map((u) => ({ user: u.user, mechanisms: u.credentialInfos.map((c) => ({ mechanism: mechanismOfCode(c.mechanism), iterations: c.iterations })) }))));
    for (const u of r.results) out(`${u.user}\t${u.credentialInfos.map((c) => `${mechanismOfCode(c.mechanism)}(${c.iterations})`).join(' ')}`);
    return;
  }
  if (!name) throw new UsageError(`users ${sub ?? ''} needs a user NAME`.replace(/ +/g, ' '));
  let results: Array<{ user: string; errorCode: number; errorMessage: string | null }>;
  if (sub === 'add') {
    only(flags, ['--password', '--mechanism', '--iterations']);
    // `--password -` reads it from standard input, so it stays out of the process list and shell history.
    let password = str(flags, '--password');
    if (password === '-') password = (await readStdin()).replace(/\r?\n$/, '');
    if (!password) throw new UsageError('users add needs --password P (or --password - to read it from standard input)');
    const mechanisms = mechanismsOf(str(flags, '--mechanism'));
    const iterations = str(flags, '--iterations') !== undefined ? Number(str(flags, '--iterations')) : defaultIterations;
    if (!Number.isInteger(iterations) || iterations < SCRAM_ITERATIONS_MIN || iterations > SCRAM_ITERATIONS_MAX) throw new UsageError(`--iterations must be ${SCRAM_ITERATIONS_MIN}..${SCRAM_ITERATIONS_MAX}`);
    // KIP-554: the client salts and hashes; only the salted password crosses the wire.
    const upsertions = mechanisms.map((m) => {
      const salt = randomBytes(32);
      return { name, mechanism: SCRAM_MECHANISM_CODES[m], iterations, salt, saltedPassword: saltedPassword(hashOf(m), password, salt, iterations) };
    });
    ({ results } = await conn.request<{ results: typeof results }>(alterUserScramCredentials, 0, { deletions: [], upsertions }));
  } else if (sub === 'remove') {
    only(flags, ['--mechanism']);
    const mechanisms = mechanismsOf(str(flags, '--mechanism'));
    const described = await conn.request<{ results: Array<{ user: string; errorCode: number; errorMessage: string | null; credentialInfos: Array<{ mechanism: number }> }> }>(describeUserScramCredentials, 0, { users: [{ name }] });
    const had = described.results[0];
    if (!had || had.errorCode !== 0) throw new Refused(`${codeName(had?.errorCode ?? -1)}: ${had?.errorMessage ?? `no user ${name}`}`);
    const deletions = had.credentialInfos.filter((c) => mechanisms.includes(mechanismOfCode(c.mechanism)!)).map((c) => ({ name, mechanism: c.mechanism }));
    if (deletions.length === 0) throw new Refused(`RESOURCE_NOT_FOUND: user ${name} has no ${mechanisms.join(' or ')} credential`);
    ({ results } = await conn.request<{ results: typeof results }>(alterUserScramCredentials, 0, { deletions, upsertions: [] }));
  } else throw new UsageError(`unknown users command "${sub}" (add, list, remove)`);
  for (const r of results) if (r.errorCode !== 0) throw new Refused(`${codeName(r.errorCode)}: ${r.errorMessage ?? ''}`);
  out(sub === 'add' ? `user ${name} set` : `user ${name} removed`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function mechanismsOf(v: string | undefined): ScramMechanism[] {
  if (v === undefined || v === 'both') return [...SCRAM_MECHANISMS];
  if (!SCRAM_MECHANISMS.includes(v as ScramMechanism)) throw new UsageError(`--mechanism must be SCRAM-SHA-256, SCRAM-SHA-512 or both, got "${v}"`);
  return [v as ScramMechanism];
}

/** The binding (add, remove) or filter (list) the flags describe. */
function bindingOf(flags: Flags, forList: boolean): AclBinding {
  const resources = [['--topic', ResourceType.TOPIC], ['--group', ResourceType.GROUP], ['--transactional-id', ResourceType.TRANSACTIONAL_ID]] as const;
  const named = resources.filter(([f]) => flags.has(f));
  const cluster = flags.has('--cluster');
  if (named.length + Number(cluster) > 1) throw new UsageError('give one of --topic, --group, --transactional-id, --cluster');
  if (named.length + Number(cluster) === 0 && !forList) throw new UsageError('name the resource: --topic T, --group G, --transactional-id X or --cluster');
  const principal = str(flags, '--principal');
  if (!forList && !principal) throw new UsageError('--principal User:<name> is required (User:* for everyone)');
  if (principal && !/^User:.+$/.test(principal)) throw new UsageError(`--principal must be User:<name>, got "${principal}"`);
  const opText = str(flags, '--operation');
  if (!forList && !opText) throw new UsageError('--operation is required (read, write, create, delete, alter, describe, describe_configs, alter_configs, idempotent_write, all)');
  const operation = opText === undefined ? Operation.ANY : codeOf('operation', opText);
  if (operation === undefined) throw new UsageError(`--operation "${opText}" is not one of read, write, create, delete, alter, describe, describe_configs, alter_configs, idempotent_write, all`);
  return {
    resourceType: cluster ? ResourceType.CLUSTER : named.length ? named[0][1] : ResourceType.ANY,
    resourceName: cluster ? CLUSTER_NAME : named.length ? String(flags.get(named[0][0])) : (null as unknown as string),
    patternType: flags.has('--prefixed') ? PatternType.PREFIXED : forList ? PatternType.ANY : PatternType.LITERAL,
    principal: principal ?? (null as unknown as string),
    host: str(flags, '--host') ?? (forList ? (null as unknown as string) : '*'),
    operation,
    permission: flags.has('--deny') ? Permission.DENY : forList ? Permission.ANY : Permission.ALLOW,
  };
}

const ACL_FLAGS = ['--topic', '--group', '--transactional-id', '--cluster', '--prefixed', '--principal', '--operation', '--deny', '--host'];

function wireFilter(b: AclBinding) {
  return { resourceTypeFilter: b.resourceType, resourceNameFilter: b.resourceName, patternTypeFilter: b.patternType, principalFilter: b.principal, hostFilter: b.host, operation: b.operation, permissionType: b.permission };
}

async function acls(conn: KafkaAdminConnection, sub: string | undefined, flags: Flags): Promise<void> {
  if (sub === 'add') {
    only(flags, ACL_FLAGS);
    const b = bindingOf(flags, false);
    const r = await conn.request<{ results: Array<{ errorCode: number; errorMessage: string | null }> }>(createAcls, 3, {
      creations: [{ resourceType: b.resourceType, resourceName: b.resourceName, resourcePatternType: b.patternType, principal: b.principal, host: b.host, operation: b.operation, permissionType: b.permission }],
    });
    const res = r.results[0];
    if (!res || res.errorCode !== 0) throw new Refused(`${codeName(res?.errorCode ?? -1)}: ${res?.errorMessage ?? ''}`);
    return out(`added: ${bindingText(b)}`);
  }
  if (sub === 'list') {
    only(flags, [...ACL_FLAGS, '--json']);
    const f = bindingOf(flags, true);
    type Described = { errorCode: number; errorMessage: string | null; resources: Array<{ resourceType: number; resourceName: string; patternType: number; acls: Array<{ principal: string; host: string; operation: number; permissionType: number }> }> };
    const r = await conn.request<Described>(describeAcls, 3, wireFilter(f));
    if (r.errorCode !== 0) throw new Refused(`${codeName(r.errorCode)}: ${r.errorMessage ?? ''}`);
    const all = r.resources.flatMap((res) => res.acls.map((a) => ({ resourceType: res.resourceType, resourceName: res.resourceName, patternType: res.patternType, principal: a.principal, host: a.host, operation: a.operation, permission: a.permissionType })));
    if (flags.has('--json')) return out(JSON.stringify(all));
    for (const b of all) out(bindingText(b));
    return;
  }
  if (sub === 'remove') {
    only(flags, ACL_FLAGS);
    const b = bindingOf(flags, false);
    const r = await conn.request<{ filterResults: Array<{ errorCode: number; errorMessage: string | null; matchingAcls: unknown[] }> }>(deleteAcls, 3, { filters: [wireFilter(b)] });
    const res = r.filterResults[0];
    if (!res || res.errorCode !== 0) throw new Refused(`${codeName(res?.errorCode ?? -1)}: ${res?.errorMessage ?? ''}`);
    if (res.matchingAcls.length === 0) throw new Refused(`RESOURCE_NOT_FOUND: no ACL ${bindingText(b)}`);
    return out(`removed: ${bindingText(b)}`);
  }
  throw new UsageError(`unknown acls command "${sub}" (add, list, remove)`);
}

export async function runSecurityAdmin(command: 'users' | 'acls', argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let conn: KafkaAdminConnection | undefined;
  try {
    const { positional, flags } = parse(argv);
    const address = str(flags, '--kafka') ?? env.TRIBUTARY_KAFKA ?? '127.0.0.1:9092';
    const user = str(flags, '--sasl-user') ?? env.TRIBUTARY_SASL_USER;
    const password = str(flags, '--sasl-password') ?? env.TRIBUTARY_SASL_PASSWORD;
    if ((user === undefined) !== (password === undefined)) throw new UsageError('give both --sasl-user and --sasl-password (or TRIBUTARY_SASL_USER and TRIBUTARY_SASL_PASSWORD), or neither');
    const tlsValues = tlsFlagValues((name) => str(flags, name) ?? (flags.get(name) === true ? 'true' : undefined), env);
    const tls = wantsTls(tlsValues) ? adminTlsOptions(tlsValues, (m) => new UsageError(m)) : null;
    // A TLS failure, in words naming the flag that fixes it (host/admin/tls.ts), else the error's own.
    const why = (err: unknown) => explainTlsError(err as Error, tls !== null, tls?.cert !== undefined, address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '')) ?? (err as Error).message;
    try {
      conn = await KafkaAdminConnection.open(address, undefined, tls ?? undefined);
    } catch (err) {
      throw Object.assign(new Error(`cannot reach the Kafka listener at ${address}: ${why(err)}`), { unreachable: true });
    }
    if (user !== undefined) {
      try {
        await conn.authenticate(saslHandshake, saslAuthenticate, user, password!);
      } catch (err) {
        const explained = explainTlsError(err as Error, tls !== null, tls?.cert !== undefined, address);
        if (explained) throw Object.assign(new Error(`the Kafka listener at ${address}: ${explained}`), { unreachable: true });
        throw new Refused(`SASL_AUTHENTICATION_FAILED: ${(err as Error).message}`);
      }
    }
    const iterations = Number(env.TRIBUTARY_SCRAM_ITERATIONS ?? 8192);
    try {
      if (command === 'users') await users(conn, positional[0], positional[1], flags, iterations);
      else await acls(conn, positional[0], flags);
    } catch (err) {
      // A refused client certificate: node's server closes the connection after the TLS 1.3 handshake, at our first request.
      const explained = err instanceof UsageError || err instanceof Refused ? null : explainTlsError(err as Error, tls !== null, tls?.cert !== undefined, address);
      if (explained) throw Object.assign(new Error(`the Kafka listener at ${address}: ${explained}`), { unreachable: true });
      throw err;
    }
    return 0;
  } catch (err) {
    process.stderr.write(`tributary ${command}: ${(err as Error).message}\n`);
    if (err instanceof UsageError) return 2;
    if ((err as { unreachable?: boolean }).unreachable) return 3;
    return 1;
  } finally {
    conn?.close();
  }
}
