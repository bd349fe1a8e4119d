// Transactions mode, fenced: another producer took a newer epoch of this source partition's
// transactional id and this process's re-initialisation was refused (host/kafka/client/
// transactions.ts). The partition is `blocked`; it is not blocked for the life of the process.
// Every uplink.fencedRecheckMs it is looked at again (docs/uplink.md, "Fenced, then re-checked"):
//
//   the checkpoint committed in the target for this source partition moved since the last look
//       → the newer producer is forwarding: stay blocked (counted, logged), look again later.
//   it did not move
//       → nobody is forwarding (the newer producer stopped, or the "fence" was a coordinator's
//         refusal that no longer holds): re-initialise as at start — a new producer object from
//         the link state's id and epoch (KIP-360 bump, else a fresh id, which on Kafka bumps the
//         transactional id's epoch and fences the other) — then read the target back (committed
//         checkpoint and data) and resume after it, as after a restart. Counted and logged.
//
// Why this never duplicates: it is exactly what a restarted edge does (docs/uplink.md, exactly-once
// argument, transactions mode): the new epoch fences every earlier one, and the resume point is
// read from the target after that. Why it does not ping-pong with a live newer producer: a
// producer that forwards moves the checkpoint, and a moved checkpoint keeps this one off. One that
// is alive but idle (caught up) may be fenced in turn; it then sees this one's checkpoints move and
// stays off. uplink.fencedRecheckMs=0 keeps the old rule: blocked until the node restarts.
//
// No file format: the state is this process's (a restart re-initialises anyway).

export type FenceDecision = { kind: 'wait'; leftMs: number } | { kind: 'never' } | { kind: 'check' };

export class FenceRecheck {
  /** When this process was fenced or last found the newer producer forwarding (null: not fenced). */
  private sinceMs: number | null = null;
  /** The committed checkpoint then (-1: none or not read). */
  private checkpoint = -1;
  /** The fence's reason, as the producer gave it. */
  reason = '';

  constructor(readonly recheckMs: number) {}

  get fenced(): boolean {
    return this.sinceMs !== null;
  }

  /** Fenced now, with the committed checkpoint read at that moment (-1: none or unreadable). */
  fencedAt(nowMs: number, checkpoint: number, reason: string): void {
    this.sinceMs = nowMs;
    this.checkpoint = checkpoint;
    this.reason = reason;
  }

  /** Whether to look again now. */
  due(nowMs: number): FenceDecision {
    if (this.sinceMs === null) return { kind: 'check' };
    if (this.recheckMs === 0) return { kind: 'never' };
    const leftMs = this.sinceMs + this.recheckMs - nowMs;
    return leftMs > 0 ? { kind: 'wait', leftMs } : { kind: 'check' };
  }

  /**
   * The look: `checkpointNow` above the one noted → the newer producer forwards (the wait starts
   * again from now, against the new checkpoint); else → re-initialise (the fence is cleared).
   */
  decide(checkpointNow: number, nowMs: number): 'newer-producer-forwarding' | 'reinitialise' {
    if (checkpointNow > this.checkpoint) {
      this.sinceMs = nowMs;
      this.checkpoint = checkpointNow;
      return 'newer-producer-forwarding';
    }
    this.sinceMs = null;
    this.checkpoint = -1;
    return 'reinitialise';
  }

  /** The noted checkpoint (for logs). */
  get checkpointSeen(): number {
    return this.checkpoint;
  }
}
