// The node-wide bound on replica fetch answers (cluster.replicaFetchBytesTotalMax). A follower
// runs one fetcher per leader node it follows partitions from (replica-fetcher.ts), each with one
// multi-partition fetch in flight, and an answer may be as large as the fetch client accepts
// (replicaFetchResponseBytesMax plus headroom for a first batch larger than that, KIP-74). Each
// fetch reserves its largest answer here before it is sent and gives it back once every
// partition's records are appended (or the fetch failed), so the answers held or awaited never
// pass the total, which the start-up memory budget counts (host/config/budget.ts). At the
// defaults (8 MiB; 1 MiB + 1 MiB per answer) the fetches to 4 leader nodes, every peer of a
// 5-voter cluster, run at once and never wait here; a smaller total makes leaders take turns.
//
// Fairness: waiting fetches are served in arrival order. A fetch sent while others wait
// long-polls only briefly (`contended`), so an idle leader's long poll does not hold the budget
// from a busy one for a whole replicaFetchWaitMs.

// The answer's size bound lives with the options (options.ts), which every node loads to check its
// config: importing it from here would load this module on single nodes too.
export { FETCH_ANSWER_HEADROOM_BYTES, replicaFetchAnswerBytesMax } from './options.js';

export class FetchBudget {
  private used = 0;
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = [];

  constructor(readonly totalBytes: number) {}

  /** Bytes reserved by fetches now out. */
  get reservedBytes(): number {
    return this.used;
  }

  /** Whether fetches wait for room: then a fetch should not park at its leader for long. */
  get contended(): boolean {
    return this.waiting.length > 0;
  }

  /**
   * Reserves `bytes` (at most the total: the options check that one answer fits), waiting in
   * arrival order; resolves with the release, or rejects when `signal` aborts first.
   */
  async reserve(bytes: number, signal: AbortSignal): Promise<() => void> {
    if (bytes > this.totalBytes) throw new Error(`a replica fetch of ${bytes} bytes can never fit cluster.replicaFetchBytesTotalMax=${this.totalBytes}`);
    signal.throwIfAborted();
    if (this.waiting.length === 0 && this.used + bytes <= this.totalBytes) {
      this.used += bytes;
      return this.releaser(bytes);
    }
    await new Promise<void>((resolve, reject) => {
      const entry = { bytes, grant: () => (signal.removeEventListener('abort', onAbort), resolve()) };
      const onAbort = () => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        this.grantWaiting();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
    return this.releaser(bytes);
  }

  private releaser(bytes: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.grantWaiting();
    };
  }

  /** Hands room to waiting fetches in arrival order (the first that does not fit blocks the rest: no starvation). */
  private grantWaiting(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.totalBytes) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}
