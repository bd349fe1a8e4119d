// Cuts a Kafka-protocol byte stream (int32 size, then that many bytes) into frames.
//
// Why not gather chunks and join them: a follower's fetch answer is up to a MiB and arrives in
// ~16 socket reads; keeping the chunks and joining them with one Buffer.concat at the end copies
// the whole answer a second time, cold, after the chunks have aged (every one of them survives a
// young-generation collection). Here a frame whose bytes span reads gets one buffer of its own,
// sized when its length is read, and each read is copied into it while it is still in cache; the
// read is then garbage at once. A frame that lies whole inside one read is handed out as a view
// of that read (no copy at all: small answers, the common case).
//
// Bounds: a size outside minBytes..maxBytes is refused before any of its bytes is kept (the
// caller closes the connection: the stream cannot be resynchronised). At most one partial frame
// (≤ maxBytes) and 3 bytes of a split size are held.
export class FrameReader {
  private readonly sizeBytes = Buffer.alloc(4);
  private sizeFilled = 0;
  private frame: Buffer | null = null;
  private frameFilled = 0;
  private stopped = false;

  constructor(
    private readonly bounds: { minBytes: number; maxBytes: number },
    private readonly onFrame: (frame: Buffer) => void,
    /** Called once with a size outside the bounds; nothing more is read afterwards. */
    private readonly onBadSize: (size: number) => void,
  ) {}

  /** Bytes of the frame being gathered, or of its size field, held so far. */
  get heldBytes(): number {
    return this.frame ? this.frameFilled : this.sizeFilled;
  }

  /** Reads nothing more (the connection failed; frames already cut were delivered). */
  stop(): void {
    this.stopped = true;
    this.frame = null;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.stopped) {
      if (this.frame) {
        const take = Math.min(this.frame.length - this.frameFilled, chunk.length - at);
        chunk.copy(this.frame, this.frameFilled, at, at + take);
        this.frameFilled += take;
        at += take;
        if (this.frameFilled === this.frame.length) {
          const frame = this.frame;
          this.frame = null;
          this.frameFilled = 0;
          this.onFrame(frame);
        }
        continue;
      }
      let size: number;
      if (this.sizeFilled === 0 && chunk.length - at >= 4) {
        size = chunk.readInt32BE(at);
        at += 4;
      } else {
        const take = Math.min(4 - this.sizeFilled, chunk.length - at);
        chunk.copy(this.sizeBytes, this.sizeFilled, at, at + take);
        this.sizeFilled += take;
        at += take;
        if (this.sizeFilled < 4) return;
        this.sizeFilled = 0;
        size = this.sizeBytes.readInt32BE(0);
      }
      if (size < this.bounds.minBytes || size > this.bounds.maxBytes) {
        this.stop();
        this.onBadSize(size);
        return;
      }
      if (chunk.length - at >= size) {
        const frame = chunk.subarray(at, at + size);
        at += size;
        this.onFrame(frame);
      } else {
        this.frame = Buffer.allocUnsafe(size);
        this.frameFilled = 0;
      }
    }
  }
}
