// `tributary uplink status`: what each configured uplink of a node is doing, read from the status
// view the uplink rewrites in its data dir (host/sync/uplink.ts, `__uplink/<site>.status.json`):
// link state and totals (lag in records, bytes and seconds, bandwidth in use and cap, drops, gaps),
// per partition the same figures, its state, position and the reason when blocked; at most
// uplink.statusPartitionsMax partition rows (the view is written already cut, with the total).
// Reading the data dir (not a listener) keeps it working while every listener is off or the
// link is down; `writtenAtMs` shows how fresh the view is.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { STATUS_FORMAT, type UplinkStatus } from '../sync/uplink.js';

const USAGE = 'usage: tributary uplink status [--data-dir DIR] [--json]';

export async function runUplinkCli(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'status') {
    process.stderr.write(`tributary uplink: unknown subcommand ${sub === undefined ? '(none)' : `"${sub}"`}\n${USAGE}\n`);
    return 2;
  }
  let dataDir = env.TRIBUTARY_DATA_DIR ?? './data';
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--data-dir' && rest[i + 1]) dataDir = rest[++i];
    else if (rest[i] === '--json') json = true;
    else {
      process.stderr.write(`tributary uplink status: unknown option "${rest[i]}"\n${USAGE}\n`);
      return 2;
    }
  }
  const dir = join(resolve(dataDir), '__uplink');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.status.json')).sort();
  if (names.length === 0) {
    process.stderr.write(`tributary uplink status: no uplink status in ${dir} (is uplink.site set, and has the node started?)\n`);
    return 1;
  }
  for (const name of names) {
    const s = JSON.parse(await readFile(join(dir, name), 'utf8')) as UplinkStatus & { format: string; writtenAtMs: number };
    if (s.format !== STATUS_FORMAT) {
      process.stderr.write(`tributary uplink status: ${name} is ${s.format}, this build reads ${STATUS_FORMAT}\n`);
      return 1;
    }
    if (json) {
      process.stdout.write(JSON.stringify(s) + '\n');
      continue;
    }
    const ageS = Math.round((Date.now() - s.writtenAtMs) / 1000);
    // Views written before the byte budget existed have no backlog fields.
    const budget = s.backlogBytesMax === undefined ? '' : `, backlog ${s.backlogBytes} of ${s.backlogBytesMax > 0 ? `${s.backlogBytesMax} bytes` : 'unbounded'}`;
    process.stdout.write(`site ${s.site} → ${s.bootstrap.join(',')}: link ${s.link}, ${s.bytesSent} bytes sent${budget} (as of ${ageS} s ago)\n`);
    // Views written before the lag figures existed have no totals.
    if (s.lagBytes !== undefined) {
      const cap = s.bandwidthCapBytesPerSec > 0 ? `cap ${s.bandwidthCapBytesPerSec} B/s` : 'no cap';
      process.stdout.write(`  lag ${s.lagRecords} records, ${s.lagBytes} bytes, oldest ${s.lagSecondsMax} s · bandwidth ${s.bandwidthBytesPerSec} B/s over ${s.bandwidthWindowMs / 1000} s (${cap}) · dropped ${s.droppedRecords} records, ${s.droppedBytes} bytes · retention gaps ${s.gapRecords} records, ${s.gapBytes} bytes\n`);
    }
    process.stdout.write('  source\ttarget\tstate\tmode\tposition\tlag\tsent\tbacklog bytes\ton full\tdropped\tlag bytes\tlag s\tB/s\tdropped bytes\tgaps\tgap bytes\treason\n');
    for (const p of s.partitions) {
      process.stdout.write(`  ${p.source.topic}-${p.source.partition}\t${p.target.topic}-${p.target.partition}\t${p.state}${p.stalledForSec ? ` STALLED ${p.stalledForSec}s` : ''}\t${p.mode}\t${p.position}\t${p.lagRecords}\t${p.recordsSent}\t${p.backlogBytes ?? '-'}\t${p.onFull ?? '-'}\t${p.droppedRecords ?? '-'}\t${p.lagBytes ?? '-'}\t${p.lagSeconds ?? '-'}\t${p.bandwidthBytesPerSec ?? '-'}\t${p.droppedBytes ?? '-'}\t${p.gapRecords ?? '-'}\t${p.gapBytes ?? '-'}\t${p.reason ?? ''}\n`);
    }
    if (s.partitionsTotal !== undefined && s.partitionsTotal > s.partitions.length) {
      process.stdout.write(`  … ${s.partitionsTotal - s.partitions.length} more partitions not shown (uplink.statusPartitionsMax=${s.partitions.length}: blocked or retrying first, then the largest lag in bytes; the totals above cover all ${s.partitionsTotal})\n`);
    }
    // Views written before the downlink existed have no `downlink` field.
    const down = s.downlink ?? [];
    if (down.length > 0) {
      process.stdout.write('  downlink: central\tlocal\tstate\tposition\tlag\tcopied\treason\n');
      for (const d of down) process.stdout.write(`  ${d.central.topic}-${d.central.partition}\t${d.local.topic}-${d.local.partition}\t${d.state}\t${d.position}\t${d.lagRecords}\t${d.recordsCopied}\t${d.reason ?? ''}\n`);
    }
  }
  return 0;
}
