// Purpose: the log's "time" field is built from UTC fields instead of Date.prototype.toISOString
// (host/logging.ts says why: toISOString maps ICU's time-zone names into every node); it must be
// the same text toISOString gives, for every instant a log line can carry and at the edges of
// its format (padding of each field, years outside 0000–9999, instants before 1970), and the
// logger writes it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isoTimestamp } from '../../../host/logging.js';
import { projectRoot } from '../../helpers/index.js';

t.test('log timestamp: the same text as toISOString, at the edges of the format', { timeout: 10_000 }, async (t) => {
  const edges = [
    0, -1, 1, 999, 1000, 59_999, 3_599_999, 86_399_999, // padding of ms, seconds, minutes, hours
    Date.UTC(2026, 0, 1), Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2024, 1, 29, 12), // month, day, leap day
    Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(0, 0, 1) - 1, // years beyond 4 digits
    -62_198_755_200_000, // year 0
    8.64e15, -8.64e15, // the range's ends
  ];
  for (const ms of edges) t.equal(isoTimestamp(ms), new Date(ms).toISOString(), `${ms}`);
});

t.test('log timestamp: the same text as toISOString for 100,000 instants between 1900 and 2200', { timeout: 30_000 }, async (t) => {
  let mismatches = 0;
  let first = '';
  const from = Date.UTC(1900, 0, 1);
  const span = Date.UTC(2200, 0, 1) - from;
  for (let i = 0; i < 100_000; i++) {
    const ms = from + Math.floor(Math.random() * span);
    const got = isoTimestamp(ms);
    const want = new Date(ms).toISOString();
    if (got !== want && mismatches++ === 0) first = `${ms}: ${got} ≠ ${want}`;
  }
  t.equal(mismatches, 0, first || 'every instant matches');
});

t.test('log timestamp: a line from createLogger carries it as "time"', { timeout: 30_000 }, async (t) => {
  const logging = pathToFileURL(join(projectRoot, 'dist/host/logging.js')).href;
  const before = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { createLogger } = await import(${JSON.stringify(logging)}); createLogger('info').info('hello')`], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim()) as { time: string; msg: string };
  t.equal(line.msg, 'hello');
  t.match(line.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, `time ${line.time}`);
  const at = Date.parse(line.time);
  t.ok(at >= before - 1000 && at <= Date.now() + 1000, 'the time of the line, read back');
});
