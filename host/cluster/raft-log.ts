// The Raft log as the state machine sees it: a snapshot (everything up to snapshotIndex,
// compacted) followed by the entries after it, all in memory (metadata logs are small and are
// compacted by snapshots). It also tracks three positions, asserted in this order on every change:
//
//   applied ≤ commit ≤ lastIndex,   stableIndex ≤ lastIndex,   snapshotIndex ≤ applied
//
// `stableIndex` is the highest index known to be on disk (persisted by the caller and
// acknowledged with advance()); entries above it are "unstable" and go out in the next Ready.
// Entries are handed to the application only when committed AND stable, so a node never
// applies what a crash could take back from its own disk.
import type { Entry, Snapshot } from './raft-types.js';

export class RaftLog {
  private entries: Entry[] = [];
  snapshot: Snapshot;
  commit: number;
  applied: number;
  stableIndex: number;

  constructor(snapshot: Snapshot, entries: readonly Entry[], commit: number) {
    this.snapshot = snapshot;
    for (const e of entries) if (e.index > snapshot.index) this.entries.push(e);
    this.assertContiguous();
    this.stableIndex = this.lastIndex();
    // A commit index on disk may name entries a torn write lost: clamp (commit is re-learnt).
    this.commit = Math.max(snapshot.index, Math.min(commit, this.lastIndex()));
    this.applied = snapshot.index;
  }

  get snapshotIndex(): number {
    return this.snapshot.index;
  }

  firstIndex(): number {
    return this.snapshot.index + 1;
  }

  lastIndex(): number {
    return this.snapshot.index + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length ? this.entries[this.entries.length - 1]!.term : this.snapshot.term;
  }

  /** The term of the entry at `index`; undefined when compacted away (below the snapshot) or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.index - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Entries [from, to] (inclusive), at most `countMax` of them and about `bytesMax` of data (at least one). */
  slice(from: number, to: number, countMax = Infinity, bytesMax = Infinity): Entry[] {
    if (from <= this.snapshot.index) throw new Error(`raft log: slice from ${from} is compacted (snapshot ${this.snapshot.index})`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = from; i <= Math.min(to, this.lastIndex()) && out.length < countMax; i++) {
      const e = this.entry(i)!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /** Is a candidate whose log ends at (lastIndex, lastTerm) at least as up to date as this one (§5.4.1)? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  append(entry: Entry): void {
    if (entry.index !== this.lastIndex() + 1) throw new Error(`raft log: append ${entry.index} after ${this.lastIndex()}`);
    this.entries.push(entry);
  }

  /**
   * Follower side of AppendEntries after the consistency check passed: skip entries already
   * present with the same term, truncate at the first conflict, append the rest. Returns the
   * index of the last entry of the request. Truncating a committed entry would break
   * state-machine safety, so it is asserted impossible.
   */
  appendFromLeader(prevIndex: number, entries: readonly Entry[]): number {
    let i = 0;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index <= this.snapshot.index) continue;
      const mine = this.term(e.index);
      if (mine === undefined) break;
      if (mine !== e.term) {
        if (e.index <= this.commit) throw new Error(`raft log: conflict at committed index ${e.index} (commit ${this.commit})`);
        this.entries.length = e.index - this.snapshot.index - 1;
        this.stableIndex = Math.min(this.stableIndex, e.index - 1);
        break;
      }
    }
    for (; i < entries.length; i++) this.entries.push(entries[i]!);
    this.assertContiguous();
    return prevIndex + entries.length;
  }

  /** The first index of the run of entries with `term` that contains `index` (for rejection hints). */
  firstIndexOfTerm(index: number, term: number): number {
    let i = index;
    while (i - 1 > this.snapshot.index && this.term(i - 1) === term) i--;
    return i;
  }

  /** The highest index whose entry has `term`, or 0 when this log has none (leader side of the hint). */
  lastIndexOfTerm(term: number): number {
    for (let i = this.lastIndex(); i > this.snapshot.index; i--) {
      const t = this.term(i)!;
      if (t === term) return i;
      if (t < term) return 0;
    }
    return this.snapshot.term === term ? this.snapshot.index : 0;
  }

  commitTo(index: number): void {
    if (index <= this.commit) return;
    if (index > this.lastIndex()) throw new Error(`raft log: commit ${index} beyond last index ${this.lastIndex()}`);
    this.commit = index;
  }

  /** Committed entries that are also on disk and not yet handed out, up to `countMax`. */
  nextToApply(countMax: number): Entry[] {
    const upTo = Math.min(this.commit, this.stableIndex);
    if (upTo <= this.applied) return [];
    return this.slice(this.applied + 1, Math.min(upTo, this.applied + countMax));
  }

  appliedTo(index: number): void {
    if (index < this.applied || index > this.commit) throw new Error(`raft log: applied ${index} outside [${this.applied}, ${this.commit}]`);
    this.applied = index;
  }

  /** Replace the whole log by a snapshot from the leader (InstallSnapshot, §7). */
  restore(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    this.entries = [];
    this.commit = snapshot.index;
    this.applied = snapshot.index;
    this.stableIndex = snapshot.index;
  }

  /** Drop entries up to a snapshot the application took at or below its applied index. */
  compact(snapshot: Snapshot): void {
    if (snapshot.index <= this.snapshot.index) return;
    if (snapshot.index > this.applied) throw new Error(`raft log: compact to ${snapshot.index} above applied ${this.applied}`);
    if (this.term(snapshot.index) !== snapshot.term) throw new Error(`raft log: snapshot term ${snapshot.term} does not match entry ${snapshot.index}`);
    this.entries = this.entries.slice(snapshot.index - this.snapshot.index);
    this.snapshot = snapshot;
  }

  /** Mark entries up to `index` (whose entry had `term` when it was handed out) as on disk. */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index > this.stableIndex) this.stableIndex = index;
  }

  unstableEntries(): Entry[] {
    return this.stableIndex >= this.lastIndex() ? [] : this.slice(Math.max(this.stableIndex, this.snapshot.index) + 1, this.lastIndex());
  }

  allEntries(): readonly Entry[] {
    return this.entries;
  }

  private assertContiguous(): void {
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.index !== this.snapshot.index + 1 + i) throw new Error(`raft log: entry ${e.index} at position ${i} after snapshot ${this.snapshot.index}`);
      if (e.term < (i === 0 ? this.snapshot.term : this.entries[i - 1]!.term)) throw new Error(`raft log: term goes back at index ${e.index}`);
    }
  }
}
