// Options of the consumer group coordinator. Every limit lives here with the reason for its
// default; `validateGroupOptions` refuses nonsense at start (a programmer/config error, thrown
// as a plain Error before anything is opened).

export interface GroupOptions {
  /** Smallest session timeout a member may ask for (Kafka group.min.session.timeout.ms). */
  minSessionTimeoutMs: number;
  /** Largest session timeout a member may ask for (Kafka group.max.session.timeout.ms). */
  maxSessionTimeoutMs: number;
  /** How long the first rebalance of an empty group waits for more members (group.initial.rebalance.delay.ms). */
  initialRebalanceDelayMs: number;
  /** Members (joined + awaiting a member id) per group (group.max.size). */
  groupMaxSize: number;
  /** Groups held by this coordinator, including empty groups that only keep offsets. */
  maxGroups: number;
  /** Longest group id accepted (bytes of UTF-8); longer ids get INVALID_GROUP_ID. */
  groupIdMaxBytes: number;
  /** Sum of one member's protocol names and metadata (JoinGroup) — its subscription. */
  memberMetadataMaxBytes: number;
  /** One member's assignment (SyncGroup from the leader). */
  memberAssignmentMaxBytes: number;
  /** Protocols one member may offer in JoinGroup. */
  memberProtocolsMax: number;
  /** Committed offsets held over all groups (one per group × partition); past it a new one is refused. */
  maxCommittedOffsets: number;
  /** Metadata string of one committed offset (Kafka offset.metadata.max.bytes). */
  offsetMetadataMaxBytes: number;
  /** Partitions of the internal `__consumer_offsets` topic, used only when it is created. */
  offsetsTopicPartitions: number;
  /** Segment size of `__consumer_offsets` (Kafka offsets.topic.segment.bytes). */
  offsetsTopicSegmentBytes: number;
  /** Committed offsets of an empty group are kept this long after it became empty (offsets.retention.minutes). */
  offsetsRetentionMs: number;
  /** How often expired offsets are looked for (offsets.retention.check.interval.ms). */
  offsetsRetentionCheckIntervalMs: number;
  /** Bytes read from `__consumer_offsets` per read call while loading. */
  loadReadBytes: number;
  /** When true, `open()` resolves before the replay ends; calls meanwhile get COORDINATOR_LOAD_IN_PROGRESS. */
  loadInBackground: boolean;
}

export const defaultGroupOptions: GroupOptions = {
  // Kafka's default: below this, a GC pause or an SD-card stall would expel healthy members.
  minSessionTimeoutMs: 6_000,
  // Kafka's default (30 min): an upper bound so a member cannot hold partitions forever.
  maxSessionTimeoutMs: 1_800_000,
  // Kafka uses 3000; edge groups are small and start together on one box within milliseconds,
  // so 3 s would only delay every consumer start. 1 s still gathers a fleet restarting at once.
  initialRebalanceDelayMs: 1_000,
  // Kafka has no limit; on a 1–4 GB Pi a group beyond 64 members is a misconfiguration.
  groupMaxSize: 64,
  // Bounds memory (offsets, members, timers) against clients inventing group ids.
  maxGroups: 1_000,
  // Ids travel in every offsets-topic key; 255 bytes covers every real naming scheme.
  groupIdMaxBytes: 255,
  // A consumer subscription is topics + user data: a few hundred bytes; 16 KiB is generous.
  memberMetadataMaxBytes: 16 * 1024,
  // An assignment lists partitions: 16 KiB holds thousands of them.
  memberAssignmentMaxBytes: 16 * 1024,
  // Real clients offer 1–3 assignors.
  memberProtocolsMax: 16,
  // Each costs ~200 bytes in memory: 100,000 is 20 MB, far past an edge node's groups × partitions
  // (Kafka has no limit; 1,000 groups × 4,000 partitions would otherwise be unbounded on a Pi).
  maxCommittedOffsets: 100_000,
  // Kafka's default.
  offsetMetadataMaxBytes: 4_096,
  // Kafka uses 50 for spreading coordinators over a cluster; one edge node needs few files.
  offsetsTopicPartitions: 4,
  // Kafka uses 100 MiB; small segments let compaction reclaim superseded commits on a small disk.
  offsetsTopicSegmentBytes: 8 * 1024 * 1024,
  // Kafka's default (7 days): a consumer offline for a long weekend resumes where it stopped.
  offsetsRetentionMs: 7 * 24 * 60 * 60 * 1000,
  // Kafka's default (10 min): expiry is not urgent, and the sweep walks every group.
  offsetsRetentionCheckIntervalMs: 600_000,
  // 1 MiB per read bounds memory while loading; the compacted topic is small anyway.
  loadReadBytes: 1024 * 1024,
  // Loading a compacted edge topic takes milliseconds; waiting keeps callers simple.
  loadInBackground: false,
};

const positiveIntegers: Array<keyof GroupOptions> = [
  'minSessionTimeoutMs',
  'maxSessionTimeoutMs',
  'groupMaxSize',
  'maxGroups',
  'groupIdMaxBytes',
  'memberMetadataMaxBytes',
  'memberAssignmentMaxBytes',
  'memberProtocolsMax',
  'maxCommittedOffsets',
  'offsetsTopicPartitions',
  'offsetsTopicSegmentBytes',
  'offsetsRetentionMs',
  'offsetsRetentionCheckIntervalMs',
  'loadReadBytes',
];

/** Merges `partial` over the defaults and checks every value; throws an Error naming the option. */
export function resolveGroupOptions(partial: Partial<GroupOptions> = {}): GroupOptions {
  const o: GroupOptions = { ...defaultGroupOptions, ...partial };
  for (const name of positiveIntegers) {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new Error(`group option ${name} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isSafeInteger(o.initialRebalanceDelayMs) || o.initialRebalanceDelayMs < 0) {
    throw new Error(`group option initialRebalanceDelayMs must be an integer >= 0, got ${o.initialRebalanceDelayMs}`);
  }
  if (o.minSessionTimeoutMs > o.maxSessionTimeoutMs) {
    throw new Error(`group option minSessionTimeoutMs (${o.minSessionTimeoutMs}) exceeds maxSessionTimeoutMs (${o.maxSessionTimeoutMs})`);
  }
  if (o.offsetMetadataMaxBytes < 0 || !Number.isSafeInteger(o.offsetMetadataMaxBytes)) {
    throw new Error(`group option offsetMetadataMaxBytes must be an integer >= 0, got ${o.offsetMetadataMaxBytes}`);
  }
  if (typeof o.loadInBackground !== 'boolean') throw new Error('group option loadInBackground must be a boolean');
  return o;
}
