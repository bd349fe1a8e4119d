// The uplink's byte budget per link (docs/uplink.md, "Byte budget and on-full policies"): what
// this site has stored and not yet forwarded to the central cluster, over every source partition
// of the link, is bounded by uplink.backlogBytesMax. The bound is kept at the broker's one write
// path (BrokerApi.setAppendAdmission): every door meets it the same way, before anything is
// written.
//
// A partition's backlog = the bytes stored from its first unforwarded offset to its log end
// (BrokerApi.bytesBetween: segment sizes and the sparse index, no file read). Its first
// unforwarded offset is the uplink's position (or, before the first read-back, the local
// checkpoint, else the log start), raised by a drop. When an append of n bytes would take the
// link past the budget, the on-full policy of the appended topic decides (uplink.onFull, per
// topic uplink.onFullTopics):
//   block                 refused with UPLINK_BACKLOG_FULL; the partition's unforwarded records
//                         are also held against retention (kept whatever their age or size), so
//                         nothing acknowledged is lost to the uplink
//   drop-oldest           admitted; the partition's own oldest unforwarded records are dropped from
//                         the uplink until the link is back within the budget (or the partition
//                         has nothing older left); retention may delete its unforwarded records
//                         (counted as gaps, as before)
//   drop-lower-priority   admitted when partitions of a lower priority class (uplink.priorities)
//                         whose policy is not `block` hold enough to drop, lowest class first and
//                         within a class the largest backlog first; else refused like `block`
//                         (nothing dropped)
// A drop never deletes local data (local readers keep it until retention): it moves the link's
// floor for the partition, persisted in the link state, and is counted and logged with its offsets
// when the uplink skips it (host/sync/uplink.ts) — never a silent skip.
//
// The bound by age (uplink.backlogAgeMsMax, 0 = none) goes through the same policies: every
// topicScanIntervalMs (`refreshAge`, from the uplink's scan) each partition's age floor — the first
// offset whose record timestamp is within the bound (BrokerApi.listOffset by timestamp, the time
// index) — is found; a drop-oldest partition gives up what is below it (counted and logged like a
// byte drop), and while a block or drop-lower-priority partition holds an unforwarded record below
// its floor, appends to it are refused (UPLINK_BACKLOG_FULL naming backlogAgeMsMax; dropping
// other classes frees no age). So the bound holds to within topicScanIntervalMs.
//
// Concurrency: `admit` runs inside the broker's append with no await between it and the write,
// so the check and the bytes it admits cannot be split by another append. An admitted append's
// bytes show in the log's sizes only once its write returns (under flush=always, once fsynced),
// and a producer pipelines appends: until then they count as landing (`landed` takes them off),
// so appends in flight together cannot each see the same room and pass the budget together.
import type { AppendAdmission, BrokerApi, TopicPartition } from '../broker/api.js';
import { BrokerError } from '../errors/index.js';
import type { OnFullPolicy } from './options.js';


/** What the budget needs of one source partition of the link. */
export interface BudgetPartition {
  readonly source: TopicPartition;
  /** Priority class (0 = highest). */
  readonly priority: number;
  readonly policy: OnFullPolicy;
  /** The first source offset the uplink has not forwarded and not dropped. */
  unforwardedFrom(): number;
  /** Gives up the records below `offset` (never lowers the floor); `why` goes to the log. */
  dropBelow(offset: number, why: string): void;
}

export class LinkBudget implements AppendAdmission {
  /** Set by a refusal, cleared by the next admitted append: one log line per full spell, not per refusal. */
  private full = false;
  /** Per partition key: the first offset within uplink.backlogAgeMsMax, as of the last refreshAge. */
  private readonly ageFloors = new Map<string, number>();
  private refreshing = false;
  /** Bytes admitted whose write has not returned yet (BrokerApi's `landed` takes them off). */
  private landingBytes = 0;

  constructor(
    private readonly broker: BrokerApi,
    readonly bytesMax: number,
    private readonly partitions: () => Iterable<BudgetPartition>,
    private readonly partitionOf: (tp: TopicPartition) => BudgetPartition | undefined,
    private readonly events: { refused(tp: TopicPartition, backlogBytes: number, bytes: number, firstOfSpell: boolean, why: string): void; drained(backlogBytes: number): void },
    readonly ageMsMax = 0,
  ) {}

  /**
   * The age bound's look (every topicScanIntervalMs): each partition's age floor is found, and a
   * drop-oldest partition gives up its unforwarded records below it. Overlapping calls are skipped.
   */
  async refreshAge(nowMs: number): Promise<void> {
    if (this.ageMsMax <= 0 || this.refreshing) return;
    this.refreshing = true;
    try {
      for (const p of [...this.partitions()]) {
        let floor: number;
        try {
          const found = await this.broker.listOffset(p.source, nowMs - this.ageMsMax);
          floor = found.offset >= 0 ? found.offset : this.broker.offsets(p.source).logEndOffset; // none that young: all are older
        } catch {
          continue; // the partition went away
        }
        this.ageFloors.set(ageKey(p.source), floor);
        if (p.policy === 'drop-oldest' && floor > p.unforwardedFrom()) p.dropBelow(floor, `drop-oldest: records stored more than uplink.backlogAgeMsMax=${this.ageMsMax} ms ago (timestamps before ${new Date(nowMs - this.ageMsMax).toISOString()})`);
      }
    } finally {
      this.refreshing = false;
    }
  }

  /** Whether a partition holds an unforwarded record older than the age bound (as of the last look). */
  tooOld(p: BudgetPartition): boolean {
    const floor = this.ageFloors.get(ageKey(p.source));
    return this.ageMsMax > 0 && floor !== undefined && p.unforwardedFrom() < floor;
  }

  /** Bytes of one partition not yet forwarded (0 when the partition went away). */
  backlogOf(p: BudgetPartition): number {
    try {
      return this.broker.bytesBetween(p.source, p.unforwardedFrom());
    } catch {
      return 0;
    }
  }

  /** What the link holds unforwarded: stored (the partitions' backlogs) and admitted appends still being written. */
  backlogBytes(): number {
    let n = this.landingBytes;
    for (const p of this.partitions()) n += this.backlogOf(p);
    return n;
  }

  /** Admits (returning the bytes now counted as landing), makes room by a drop, or throws UPLINK_BACKLOG_FULL. */
  admit(tp: TopicPartition, bytes: number): number {
    const part = this.partitionOf(tp);
    if (!part) return 0; // not forwarded by this link (or not yet picked up by its topic scan)
    if (part.policy !== 'drop-oldest' && this.tooOld(part)) {
      this.refuse(tp, this.backlogBytes(), bytes, `it holds records not yet forwarded that are older than uplink.backlogAgeMsMax=${this.ageMsMax} ms (on-full policy ${part.policy})`);
    }
    if (this.bytesMax <= 0) return this.admitted(0, bytes);
    const total = this.backlogBytes();
    const over = total + bytes - this.bytesMax;
    if (over <= 0) return this.admitted(total, bytes);
    if (part.policy === 'drop-oldest') {
      this.dropOldest(part, over, `drop-oldest: ${bytes} new bytes for ${tp.topic}-${tp.partition} would take the link's backlog of ${total} bytes past uplink.backlogBytesMax=${this.bytesMax}`);
      return this.landing(bytes);
    }
    if (part.policy === 'drop-lower-priority' && this.dropLower(part, over, total, bytes)) return this.landing(bytes);
    this.refuse(tp, total, bytes, `the uplink holds ${total} bytes not yet forwarded and ${bytes} more would pass uplink.backlogBytesMax=${this.bytesMax} (on-full policy ${part.policy}${part.policy === 'drop-lower-priority' ? ': nothing of a lower priority left to drop' : ''})`);
  }

  landed(_tp: TopicPartition, landing: number): void {
    this.landingBytes = Math.max(0, this.landingBytes - landing);
  }

  private landing(bytes: number): number {
    this.landingBytes += bytes;
    return bytes;
  }

  private admitted(total: number, bytes: number): number {
    if (this.full) {
      this.full = false;
      this.events.drained(total);
    }
    return this.landing(bytes);
  }

  private refuse(tp: TopicPartition, total: number, bytes: number, why: string): never {
    const first = !this.full;
    this.full = true;
    this.events.refused(tp, total, bytes, first, why);
    throw new BrokerError('UPLINK_BACKLOG_FULL', `append to ${tp.topic}-${tp.partition} refused: ${why}; retry once the link drains`);
  }

  retentionHold(tp: TopicPartition): number | undefined {
    const part = this.partitionOf(tp);
    return part && part.policy === 'block' ? part.unforwardedFrom() : undefined;
  }

  /** Frees at least `bytes` from the partitions of a class below `part`'s that may drop, or frees nothing and returns false. */
  private dropLower(part: BudgetPartition, bytes: number, total: number, appended: number): boolean {
    const candidates = [...this.partitions()]
      .filter((p) => p.priority > part.priority && p.policy !== 'block')
      .map((p) => ({ p, backlog: this.backlogOf(p) }))
      .filter((c) => c.backlog > 0)
      .sort((a, b) => b.p.priority - a.p.priority || b.backlog - a.backlog);
    if (candidates.reduce((n, c) => n + c.backlog, 0) < bytes) return false;
    let left = bytes;
    for (const c of candidates) {
      if (left <= 0) break;
      left -= this.dropOldest(c.p, left, `drop-lower-priority: ${appended} new bytes for ${part.source.topic}-${part.source.partition} (class ${part.priority}) would take the link's backlog of ${total} bytes past uplink.backlogBytesMax=${this.bytesMax}; class ${c.p.priority} gives way`);
    }
    return true;
  }

  /**
   * Drops the partition's oldest unforwarded records until at least `bytes` are freed (or all of
   * them are): the smallest offset whose bytes below it reach `bytes`, found by bisection over
   * bytesBetween (a step function that changes at batch starts: index entries and segment bases).
   * Returns the bytes freed.
   */
  private dropOldest(p: BudgetPartition, bytes: number, why: string): number {
    const from = p.unforwardedFrom();
    let end: number;
    try {
      end = this.broker.offsets(p.source).logEndOffset;
    } catch {
      return 0;
    }
    if (end <= from) return 0;
    let lo = from + 1;
    let hi = end;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.broker.bytesBetween(p.source, from, mid) >= bytes) hi = mid;
      else lo = mid + 1;
    }
    const freed = this.broker.bytesBetween(p.source, from, lo);
    p.dropBelow(lo, why);
    return freed;
  }
}

const ageKey = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`;
