// Admin commands against a running broker, over its HTTP API (docs/http.md):
// `tributary topics|produce|consume|groups ...`, over https with --cacert/--cert/--cert-key
// (host/admin/tls.ts). Exit codes: 0 ok, 1 the broker refused, 2 bad usage, 3 the broker could
// not be reached (a TLS failure too: the message names the flag that fixes it).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import type { ConnectionOptions } from 'node:tls';
import { adminTlsOptions, explainTlsError, TLS_FLAGS, tlsFlagValues, wantsTls } from './tls.js';
import { parseArgs as parseArgv, type ParsedArgs } from './args.js';

type Args = ParsedArgs;

class UsageError extends Error {}

const BOOLEAN_FLAGS = new Set(['--follow', '--json', '--tls']);

function flag(args: Args, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

function intFlag(args: Args, name: string): number | undefined {
  const v = flag(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a non-negative integer, got "${v}"`);
  return Number(v);
}

function checkFlags(args: Args, allowed: string[]): void {
  for (const name of args.flags.keys()) {
    if (name !== '--broker' && name !== '--token' && !(TLS_FLAGS as readonly string[]).includes(name) && !allowed.includes(name)) throw new UsageError(`unknown option ${name}${allowed.length ? `; options here are ${allowed.join(', ')}` : ''}`);
  }
}

class BrokerRefused extends Error {}

/** One answer: status and body text. */
interface Answer {
  status: number;
  text: string;
}

const REQUEST_TIMEOUT_MS = 30_000; // an admin call that has not answered by then will not (a long poll is not used here)

class Http {
  /**
   * `token`: sent as `Authorization: Bearer` (the HTTP API's tokens, docs/http.md); never printed.
   * `tls`: https with these options (host/admin/tls.ts), else plain http.
   */
  constructor(
    private readonly base: string,
    private readonly token: string | undefined,
    private readonly tls: ConnectionOptions | null,
  ) {}

  private send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Answer> {
    const url = new URL(this.base + path);
    // node:http(s) rather than fetch: fetch cannot take a CA file or a client certificate.
    const request = this.tls ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent: false, timeout: REQUEST_TIMEOUT_MS, ...(this.tls ?? {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  async call(method: string, path: string, body?: string, contentType = 'application/json'): Promise<unknown> {
    let res: Answer;
    try {
      const headers: Record<string, string> = body === undefined ? {} : { 'content-type': contentType };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      res = await this.send(method, path, body, headers);
    } catch (err) {
      const e = err as Error & { code?: string };
      const why = explainTlsError(e, this.tls !== null, this.tls?.cert !== undefined, new URL(this.base).hostname) ?? e.message;
      throw Object.assign(new Error(`cannot reach the broker at ${this.base}: ${why}`), { unreachable: true });
    }
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      json = { error: { message: res.text } };
    }
    if (res.status < 200 || res.status > 299) {
      const e = (json as { error?: { code?: string; message?: string } }).error;
      // A mutual-TLS HTTP listener answers 401 CLIENT_CERTIFICATE_REFUSED naming why (host/security/tls.ts).
      const hint = e?.code === 'CLIENT_CERTIFICATE_REFUSED' ? ' (pass a client certificate the listener accepts with --cert FILE --cert-key FILE, or TRIBUTARY_CERT / TRIBUTARY_CERT_KEY)' : '';
      throw new BrokerRefused(`${res.status} ${e?.code ?? ''}: ${e?.message ?? res.text}${hint}`.trim());
    }
    return json;
  }
}

const out = (s: string): void => void process.stdout.write(s + "\n");

async function topics(http: Http, args: Args): Promise<void> {
  const [sub, name] = args.positional;
  switch (sub) {
    case 'list':
    case undefined: {
      checkFlags(args, ['--json']);
      const r = (await http.call('GET', '/topics')) as { topics: Array<{ name: string; partitions: number; records: number; internal: boolean }> };
      if (flag(args, '--json')) return out(JSON.stringify(r.topics));
      out('TOPIC\tPARTITIONS\tRECORDS');
      for (const t of r.topics) out(`${t.name}${t.internal ? ' (internal)' : ''}\t${t.partitions}\t${t.records}`);
      return;
    }
    case 'describe': {
      checkFlags(args, ['--json']);
      if (!name) throw new UsageError('topics describe needs a TOPIC');
      const r = (await http.call('GET', `/topics/${encodeURIComponent(name)}`)) as {
        name: string;
        partitions: Array<{ partition: number; logStartOffset: number; highWatermark: number }>;
        config: Record<string, unknown>;
      };
      if (flag(args, '--json')) return out(JSON.stringify(r));
      out(`topic ${r.name}`);
      out('PARTITION\tSTART\tEND');
      for (const p of r.partitions) out(`${p.partition}\t${p.logStartOffset}\t${p.highWatermark}`);
      out('config:');
      for (const [k, v] of Object.entries(r.config)) out(`  ${k}=${v}`);
      return;
    }
    case 'create': {
      checkFlags(args, ['--partitions', '--config']);
      if (!name) throw new UsageError('topics create needs a TOPIC');
      const config: Record<string, string> = {};
      for (const kv of args.flags.get('--config') ?? []) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new UsageError(`--config must look like key=value, got "${kv}"`);
        config[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const r = (await http.call('POST', '/topics', JSON.stringify({ name, partitions: intFlag(args, '--partitions'), config }))) as { name: string; partitions: number };
      out(`created topic ${r.name} with ${r.partitions} partition(s)`);
      return;
    }
    case 'delete': {
      checkFlags(args, []);
      if (!name) throw new UsageError('topics delete needs a TOPIC');
      await http.call('DELETE', `/topics/${encodeURIComponent(name)}`);
      out(`deleted topic ${name}`);
      return;
    }
    default:
      throw new UsageError(`unknown topics command "${sub}" (list, describe, create, delete)`);
  }
}

async function produce(http: Http, args: Args): Promise<void> {
  checkFlags(args, ['--key', '--partition', '--value']);
  const [topic] = args.positional;
  if (!topic) throw new UsageError('produce needs a TOPIC');
  const key = flag(args, '--key') ?? null;
  const partition = intFlag(args, '--partition');
  const value = flag(args, '--value');
  const lines: string[] = [];
  if (value !== undefined) lines.push(value);
  else {
    for await (const line of createInterface({ input: process.stdin })) if (line.length) lines.push(line);
  }
  if (lines.length === 0) throw new UsageError('nothing to produce: give --value or lines on standard input');
  const body = lines.map((v) => JSON.stringify({ key, value: v, ...(partition === undefined ? {} : { partition }) })).join('\n');
  const r = (await http.call('POST', `/topics/${encodeURIComponent(topic)}/records`, body, 'application/x-ndjson')) as { offsets: Array<{ partition: number; offset: number }> };
  for (const o of r.offsets) out(`${topic}/${o.partition}@${o.offset}`);
}

interface RecordOut {
  partition?: number;
  offset: number;
  timestamp: number;
  key: string | null;
  value: string | null;
}

interface TopicOffsets {
  partitions: Array<{ partition: number; logStartOffset: number; highWatermark: number }>;
}

/** Where each partition's reading starts: one partition when --partition is given, else all. */
function consumeStarts(topic: string, t: TopicOffsets, partition: number | undefined, start: string): Array<{ partition: number; offset: number }> {
  // An offset is a position in one partition's log; applied to every partition it would name
  // unrelated records, so a numeric --offset needs --partition.
  if (partition === undefined && /^\d+$/.test(start)) throw new UsageError(`--offset ${start} needs --partition (offsets are per partition; without --partition use earliest or latest)`);
  const chosen = partition === undefined ? t.partitions : t.partitions.filter((x) => x.partition === partition);
  if (chosen.length === 0) throw new BrokerRefused(`404 UNKNOWN_TOPIC_OR_PARTITION: topic ${topic} has no partition ${partition}`);
  return chosen.map((p) => ({
    partition: p.partition,
    offset: start === 'earliest' ? p.logStartOffset : start === 'latest' ? p.highWatermark : Number(start),
  }));
}

// Reads every partition of the topic by default (a keyed record lands wherever the partitioner
// puts it), or one with --partition. Partitions are read in turn, one page each per round, so
// --follow keeps up with all of them; without --follow it stops once a round finds nothing new.
async function consume(http: Http, args: Args): Promise<void> {
  checkFlags(args, ['--partition', '--offset', '--limit', '--follow', '--json']);
  const [topic] = args.positional;
  if (!topic) throw new UsageError('consume needs a TOPIC');
  const partition = intFlag(args, '--partition');
  const limit = intFlag(args, '--limit');
  const follow = flag(args, '--follow') === 'true';
  const json = flag(args, '--json') === 'true';
  const start = flag(args, '--offset') ?? 'earliest';
  if (!/^(earliest|latest|\d+)$/.test(start)) throw new UsageError(`--offset must be earliest, latest or an offset, got "${start}"`);
  const t = (await http.call('GET', `/topics/${encodeURIComponent(topic)}`)) as TopicOffsets;
  const cursors = consumeStarts(topic, t, partition, start);
  let printed = 0;
  for (;;) {
    let found = 0;
    for (const c of cursors) {
      const want = Math.min(500, limit === undefined ? 500 : limit - printed);
      if (want <= 0) return;
      const r = (await http.call('GET', `/topics/${encodeURIComponent(topic)}/records?partition=${c.partition}&offset=${c.offset}&limit=${want}`)) as {
        records: RecordOut[];
        nextOffset: number;
      };
      for (const rec of r.records) out(json ? JSON.stringify({ partition: c.partition, ...rec }) : `${c.partition}@${rec.offset}\t${rec.key ?? ''}\t${rec.value ?? ''}`);
      printed += r.records.length;
      found += r.records.length;
      c.offset = r.nextOffset;
    }
    if (found === 0) {
      if (!follow) return;
      await new Promise((res) => setTimeout(res, 500)); // HTTP has no long poll; the WebSocket API does
    }
  }
}

async function groups(http: Http, args: Args): Promise<void> {
  checkFlags(args, ['--json']);
  const [sub, id] = args.positional;
  if (sub === 'list' || sub === undefined) {
    const r = (await http.call('GET', '/groups')) as { groups: Array<Record<string, unknown>> };
    if (flag(args, '--json')) return out(JSON.stringify(r.groups));
    out('GROUP\tSTATE\tMEMBERS\tLAG');
    for (const g of r.groups) out(`${g.groupId ?? g.id}\t${g.state ?? ''}\t${Array.isArray(g.members) ? g.members.length : (g.members ?? '')}\t${g.lag ?? g.totalLag ?? ''}`);
    return;
  }
  if (sub === 'describe') {
    if (!id) throw new UsageError('groups describe needs a GROUP');
    out(JSON.stringify(await http.call('GET', `/groups/${encodeURIComponent(id)}`), null, 2));
    return;
  }
  throw new UsageError(`unknown groups command "${sub}" (list, describe)`);
}

export async function runAdmin(command: string, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const args = parseArgv(argv, BOOLEAN_FLAGS, (m) => new UsageError(m));
    const given = flag(args, '--broker') ?? env.TRIBUTARY_BROKER;
    const tlsValues = tlsFlagValues((name) => flag(args, name), env);
    // TLS: an https:// URL, or --tls / a certificate flag with the default address.
    const base = (given ?? (wantsTls(tlsValues) ? 'https://127.0.0.1:8080' : 'http://127.0.0.1:8080')).replace(/\/+$/, '');
    if (!/^https?:\/\//.test(base)) throw new UsageError(`--broker must be an http:// or https:// URL, got "${base}"`);
    if (base.startsWith('http://') && wantsTls(tlsValues)) {
      const which = tlsValues.tls ? '--tls' : tlsValues.cacert !== undefined ? '--cacert' : tlsValues.cert !== undefined ? '--cert' : '--cert-key';
      throw new UsageError(`${which} needs TLS, but --broker (or TRIBUTARY_BROKER) is ${base}: use https://${base.slice('http://'.length)}`);
    }
    const tls = base.startsWith('https://') ? adminTlsOptions(tlsValues, (m) => new UsageError(m)) : null;
    // --token, else TRIBUTARY_TOKEN (issue 13, finding 8): the CLI works once tokens are on.
    const token = flag(args, '--token') ?? env.TRIBUTARY_TOKEN;
    if (token !== undefined && token.length < 8) throw new UsageError('--token (or TRIBUTARY_TOKEN) must be a token of at least 8 characters');
    const http = new Http(base, token, tls);
    if (command === 'topics') await topics(http, args);
    else if (command === 'produce') await produce(http, args);
    else if (command === 'consume') await consume(http, args);
    else if (command === 'groups') await groups(http, args);
    return 0;
  } catch (err) {
    process.stderr.write(`tributary ${command}: ${(err as Error).message}\n`);
    if (err instanceof UsageError) return 2;
    if ((err as { unreachable?: boolean }).unreachable) return 3;
    return 1;
  }
}
