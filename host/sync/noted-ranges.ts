// Source offset ranges already counted as given up (retention gaps), so a range met again is not
// counted twice: a partition that resumes several times in a row (a target that refuses, a link
// that drops) reads the same resume point back each time and finds the same records gone. Kept in
// memory, per partition, for the life of the link (a restart counts a gap again only if it is still
// there to be met, which the log line then says); disjoint, sorted, merged on insertion, so a few
// entries at most (the head's and a newest-first backfill's). No file format.

export class NotedRanges {
  /** Disjoint [from, to) ranges, sorted by from. */
  private readonly ranges: Array<[number, number]> = [];

  /** Notes [from, to); returns the parts of it not noted before (empty when all were). */
  add(from: number, to: number): Array<[number, number]> {
    if (to <= from) return [];
    const fresh: Array<[number, number]> = [];
    let at = from;
    for (const [a, b] of this.ranges) {
      if (b <= at) continue;
      if (a >= to) break;
      if (a > at) fresh.push([at, a]);
      at = Math.max(at, b);
      if (at >= to) break;
    }
    if (at < to) fresh.push([at, to]);
    if (fresh.length > 0) this.merge(from, to);
    return fresh;
  }

  private merge(from: number, to: number): void {
    const kept: Array<[number, number]> = [];
    let lo = from;
    let hi = to;
    for (const [a, b] of this.ranges) {
      if (b < lo || a > hi) kept.push([a, b]);
      else {
        lo = Math.min(lo, a);
        hi = Math.max(hi, b);
      }
    }
    kept.push([lo, hi]);
    kept.sort((x, y) => x[0] - y[0]);
    this.ranges.splice(0, this.ranges.length, ...kept);
  }
}
