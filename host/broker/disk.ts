// The data dir's free-space floor (docs/broker.md, "Disk contract"). A gateway in a cabinet has
// no operator: if its card fills, the OS, journald and our own metadata writes (topics.json,
// checkpoints, a topic deletion) need room to keep going. So the broker stops taking client
// writes while the filesystem holding the data dir has less than the floor free, and takes them
// again by itself once it has more:
//
//   floorBytes = min(max(diskFreeFloorPercent % of the filesystem, diskFreeFloorBytes), half the filesystem)
//
// (the cap keeps a small test filesystem usable). Below the floor: client appends and topic
// creation answer STORAGE_FULL (Kafka KAFKA_STORAGE_ERROR, MQTT 0x97, HTTP 507); reads, topic
// deletion, retention and the broker's own internal topics (group offsets, MQTT sessions:
// small and compacted, and what lets consumers and devices keep their place) go on.
//
// The state comes from statfs (`f_bavail`: what an unprivileged writer may still use) every
// diskCheckIntervalMs, and at once when a write meets ENOSPC (`noteNoSpace`). No state is kept on
// disk: a restart measures again.
import { statfs } from 'node:fs/promises';
import { BrokerError } from '../errors/index.js';
import type { Logger } from '../logging.js';
import type { Gauge, MetricsRegistry } from '../metrics/registry.js';

export interface DiskOptions {
  diskFreeFloorBytes: number;
  diskFreeFloorPercent: number;
  diskCheckIntervalMs: number;
}

export interface DiskState {
  path: string;
  freeBytes: number;
  totalBytes: number;
  floorBytes: number;
  /** True while the free space is below the floor (or the last write met ENOSPC and no check has said otherwise). */
  belowFloor: boolean;
}

export class DiskGuard {
  private state: DiskState;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly gauges: { free: Gauge; floor: Gauge; below: Gauge };

  constructor(
    private readonly path: string,
    private readonly options: DiskOptions,
    private readonly logger: Logger,
    metrics: MetricsRegistry,
  ) {
    this.state = { path, freeBytes: -1, totalBytes: -1, floorBytes: options.diskFreeFloorBytes, belowFloor: false };
    this.gauges = {
      free: metrics.gauge('tributary_disk_free_bytes', 'Bytes free (statfs f_bavail) on the filesystem holding the data dir'),
      floor: metrics.gauge('tributary_disk_free_floor_bytes', 'Free-space floor of the data dir: below it client writes are refused'),
      below: metrics.gauge('tributary_disk_below_floor', '1 while the data dir is below its free-space floor (client writes refused), else 0'),
    };
  }

  /** Measures once (so the broker knows before it opens anything) and starts the periodic check. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get current(): Readonly<DiskState> {
    return this.state;
  }

  /** Throws STORAGE_FULL while below the floor (client appends, topic creation). */
  assertWritable(what: string): void {
    if (!this.state.belowFloor) return;
    const s = this.state;
    throw new BrokerError(
      'STORAGE_FULL',
      `${what}: the data dir ${s.path} is below its free-space floor (${s.freeBytes} bytes free, floor ${s.floorBytes}: diskFreeFloorBytes/diskFreeFloorPercent); writes resume when space is freed (delete a topic or wait for retention)`,
    );
  }

  /** A write met ENOSPC/EDQUOT: refuse client writes now and measure again at once. */
  noteNoSpace(): void {
    if (!this.state.belowFloor) this.setBelow(true, 'a write met a full disk (ENOSPC)');
    void this.check();
  }

  /** One statfs; concurrent callers share it. */
  check(): Promise<void> {
    this.checking ??= this.measure().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async measure(): Promise<void> {
    let st;
    try {
      st = await statfs(this.path);
    } catch (err) {
      this.logger.warn({ err, path: this.path }, 'statfs of the data dir failed; free-space state unchanged');
      return;
    }
    const totalBytes = st.blocks * st.bsize;
    const freeBytes = st.bavail * st.bsize;
    const o = this.options;
    const floorBytes = Math.min(Math.max(Math.floor((totalBytes * o.diskFreeFloorPercent) / 100), o.diskFreeFloorBytes), Math.floor(totalBytes / 2));
    this.state = { ...this.state, freeBytes, totalBytes, floorBytes };
    this.gauges.free.set(freeBytes);
    this.gauges.floor.set(floorBytes);
    const below = freeBytes < floorBytes;
    if (below !== this.state.belowFloor) this.setBelow(below, below ? 'free space fell below the floor' : 'free space is back above the floor');
  }

  private setBelow(below: boolean, why: string): void {
    this.state = { ...this.state, belowFloor: below };
    this.gauges.below.set(below ? 1 : 0);
    const { path, freeBytes, floorBytes, totalBytes } = this.state;
    if (below) this.logger.error({ path, freeBytes, floorBytes, totalBytes }, `data dir ${path} is full: ${why}; client writes are refused (read-only) until space returns`);
    else this.logger.warn({ path, freeBytes, floorBytes, totalBytes }, `data dir ${path}: ${why}; writes accepted again`);
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.check().finally(() => {
        if (this.timer) this.schedule();
      });
    }, this.options.diskCheckIntervalMs);
    this.timer.unref();
  }
}
