// Small per-partition checkpoint files. Each is replaced atomically (write `.tmp`, fsync,
// rename, fsync the directory), so after a crash a file holds either its old or its new
// content, never a mix. Text, Kafka's checkpoint shape: a version line, then the values.
//
//   log-start-offset           "0\n<logStartOffset>\n"
//   recovery-point             "0\n<offset>\n"   every byte below it was fsynced with its
//                                                indexes; recovery scans only from the segment
//                                                containing it
//   leader-epoch-checkpoint    "0\n<count>\n<epoch> <startOffset>\n..."   (Kafka's format)
//   clean-shutdown             empty; present only between a clean close and the next open
//
// Crash policy: a missing or unparsable log-start-offset falls back to the first segment's
// base offset; a missing recovery point means "scan everything"; a bad leader-epoch file is
// rebuilt from the partitionLeaderEpoch fields of the batches recovery scans.
import { join } from 'node:path';
import type { EpochEntry } from './api.js';
import { readFileOrNull, writeFileAtomic } from './io.js';

export type { EpochEntry };

export const LOG_START_FILE = 'log-start-offset';
export const RECOVERY_POINT_FILE = 'recovery-point';
export const LEADER_EPOCH_FILE = 'leader-epoch-checkpoint';
export const CLEAN_SHUTDOWN_FILE = 'clean-shutdown';

export async function readOffsetCheckpoint(dir: string, name: string): Promise<number | null> {
  const bytes = await readFileOrNull(join(dir, name));
  if (!bytes) return null;
  const lines = bytes.toString('utf8').split('\n');
  // Digits only: Number('') is 0, and a damaged "0\n" must not read as offset 0.
  if (lines[0] !== '0' || !/^\d+$/.test(lines[1] ?? '')) return null;
  const value = Number(lines[1]);
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}

export function writeOffsetCheckpoint(dir: string, name: string, offset: number): Promise<void> {
  return writeFileAtomic(join(dir, name), `0\n${offset}\n`);
}

/**
 * Leader epochs of the partition: which epoch wrote from which offset (KIP-101). Kept in memory
 * (one entry per leadership change: tiny) and persisted on every change.
 */
export class LeaderEpochCache {
  entries: EpochEntry[] = [];
  private dirty = false;

  constructor(private readonly dir: string) {}

  async load(): Promise<boolean> {
    const bytes = await readFileOrNull(join(this.dir, LEADER_EPOCH_FILE));
    this.entries = [];
    if (!bytes) return false;
    const lines = bytes.toString('utf8').trim().split('\n');
    if (lines[0] !== '0') return false;
    const n = Number(lines[1]);
    if (!Number.isSafeInteger(n) || n < 0 || lines.length !== n + 2) return false;
    for (let i = 0; i < n; i++) {
      const [e, o] = lines[i + 2].split(' ').map(Number);
      if (!Number.isSafeInteger(e) || !Number.isSafeInteger(o)) {
        this.entries = [];
        return false;
      }
      this.entries.push({ epoch: e, startOffset: o });
    }
    return true;
  }

  get isDirty(): boolean {
    return this.dirty;
  }

  get latestEpoch(): number {
    return this.entries.length ? this.entries[this.entries.length - 1].epoch : -1;
  }

  /** Notes that `epoch` wrote from `startOffset` (ignored unless newer than the latest epoch). */
  assign(epoch: number, startOffset: number): void {
    if (epoch < 0 || epoch <= this.latestEpoch) return;
    this.entries.push({ epoch, startOffset });
    this.dirty = true;
  }

  /** Forgets epochs starting at or after `offset` (log truncated to end at `offset`). */
  truncateFromEnd(offset: number): void {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.startOffset < offset);
    if (this.entries.length !== before) this.dirty = true;
  }

  /** Log start moved to `offset`: entries wholly before it go, the one spanning it starts there. */
  truncateFromStart(offset: number): void {
    let i = 0;
    while (i + 1 < this.entries.length && this.entries[i + 1].startOffset <= offset) i++;
    if (i > 0) {
      this.entries = this.entries.slice(i);
      this.dirty = true;
    }
    if (this.entries.length && this.entries[0].startOffset < offset) {
      this.entries[0] = { epoch: this.entries[0].epoch, startOffset: offset };
      this.dirty = true;
    }
  }

  /**
   * OffsetsForLeaderEpoch (KIP-101, with KIP-279's answer for an epoch this log skipped), as
   * Kafka's LeaderEpochFileCache.endOffsetFor:
   *   - epoch -1 (undefined), or no entry at all            → { -1, -1 }
   *   - the latest epoch                                      → { epoch, logEndOffset }
   *   - newer than the latest                                 → { -1, -1 } (never valid)
   *   - older than the first entry                            → { epoch, first entry's start }
   *     (the data before it is gone; the follower starts from what is left)
   *   - otherwise: the largest known epoch ≤ the asked one, and the start of the next higher
   *     epoch as its end (so a follower that never saw epoch E learns where the last epoch it
   *     shares with the leader ended: KIP-279)
   */
  endOffsetFor(epoch: number, logEndOffset: number): { epoch: number; endOffset: number } {
    const undefinedAnswer = { epoch: -1, endOffset: -1 };
    if (epoch < 0 || this.entries.length === 0) return undefinedAnswer;
    if (epoch === this.latestEpoch) return { epoch, endOffset: logEndOffset };
    let higher = -1;
    for (let i = 0; i < this.entries.length; i++) {
      if (this.entries[i].epoch > epoch) {
        higher = i;
        break;
      }
    }
    if (higher < 0) return undefinedAnswer;
    if (higher === 0) return { epoch, endOffset: this.entries[0].startOffset };
    return { epoch: this.entries[higher - 1].epoch, endOffset: this.entries[higher].startOffset };
  }

  async persistIfDirty(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const text = `0\n${this.entries.length}\n${this.entries.map((e) => `${e.epoch} ${e.startOffset}\n`).join('')}`;
    await writeFileAtomic(join(this.dir, LEADER_EPOCH_FILE), text);
  }

  markDirty(): void {
    this.dirty = true;
  }
}
