// Structured logging: one JSON line per event on stdout (pino). Levels: fatal, error, warn,
// info, debug, trace. Components take a child logger (`logger.child({ component: 'kafka' })`).
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `Date.prototype.toISOString`'s text, built from the UTC fields. Why not toISOString itself
 * (what pino's isoTime calls): in V8 (Node 20, 22 and 24) its first call looks up the local time
 * zone's display names in ICU, which maps ~1 MiB of the `node` binary (ICU's time-zone code and
 * data; 1.3 MiB with TZ=Europe/Berlin) that an idle node then keeps resident
 * (docs/performance.md, Footprint, seventh pass). The UTC getters need none of it.
 */
export function isoTimestamp(ms: number): string {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const year = y >= 0 && y <= 9999 ? pad(y, 4) : (y < 0 ? '-' : '+') + pad(Math.abs(y), 6);
  return `${year}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

/** pino's timestamp option: the same `"time"` field as pino.stdTimeFunctions.isoTime. */
const isoTime = (): string => `,"time":"${isoTimestamp(Date.now())}"`;

export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: isoTime });
}

/** A logger that drops everything (unit tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
