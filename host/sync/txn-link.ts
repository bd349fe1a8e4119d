// Transactions mode's (re)connect steps for one source partition, kept out of uplink.ts:
//
//   ensureCheckpointTopic  the checkpoint topic (uplink.checkpointTopic, one partition) exists and
//                          is compacted: created with cleanup.policy=compact; a pre-existing one
//                          without `compact` is altered (IncrementalAlterConfigs SET
//                          cleanup.policy=compact) and that is logged; a target that refuses or
//                          cannot say is logged as a warning naming the topic and what to do. It is
//                          not a stop: a checkpoint deleted by retention only means the read-back of
//                          the data partition's origin headers decides the resume point alone
//                          (docs/uplink.md, exactly-once argument). Checked once per client (link)
//                          and again after a failure to check.
//   initProducer           the transactional producer (re)initialised — with the producer id and
//                          epoch kept in the link state, so a restarted edge bumps its predecessor's
//                          epoch (KIP-360) and fences it — the new id and epoch saved to the link
//                          state before anything is written under them, and the choice logged:
//                          bumped or fresh (why), the transaction protocol (V1) and versions.
import type { Logger } from '../logging.js';
import type { KafkaClient } from '../kafka/client/client.js';
import { KafkaClientError, KafkaResponseError } from '../kafka/client/errors.js';
import { describeTopicConfig, setTopicConfig } from '../kafka/client/topic-config.js';
import type { InitOutcome, TransactionalProducer, TxnProtocol } from '../kafka/client/transactions.js';
import { ERRORS } from '../errors/index.js';
import type { LinkStateStore } from './state-table.js';

const CLEANUP_POLICY = 'cleanup.policy';
/** Per link client: the check of its checkpoint topic, done or under way. */
const checked = new WeakMap<KafkaClient, Promise<void>>();

export type CheckpointTopicState = 'created compacted' | 'compacted' | 'altered to compacted' | 'not compacted' | 'unknown';

/** The checkpoint topic exists (created compacted when missing) and is compacted where the target lets us (see the header). */
export function ensureCheckpointTopic(client: KafkaClient, topic: string, log: Logger): Promise<void> {
  let p = checked.get(client);
  if (!p) {
    p = checkCheckpointTopic(client, topic, log).then(() => undefined);
    p.catch(() => checked.delete(client));
    checked.set(client, p);
  }
  return p;
}

/** One check (exported for tests): what was found and done. */
export async function checkCheckpointTopic(client: KafkaClient, topic: string, log: Logger): Promise<CheckpointTopicState> {
  const md = (await client.metadata([topic])).get(topic);
  if (md && md.errorCode === ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka) {
    const created = await client.createTopic(topic, 1, -1, { [CLEANUP_POLICY]: 'compact' });
    if (created.errorCode === ERRORS.NONE.kafka) {
      log.info({ topic }, `uplink created the checkpoint topic ${topic} (1 partition, cleanup.policy=compact)`);
      return 'created compacted';
    }
    if (created.errorCode !== ERRORS.TOPIC_ALREADY_EXISTS.kafka) throw new KafkaResponseError(created.errorCode, `create the checkpoint topic ${topic}${created.errorMessage ? ` (${created.errorMessage})` : ''}`);
  }
  let policy: string | null;
  try {
    policy = await describeTopicConfig(client, topic, CLEANUP_POLICY);
  } catch (err) {
    if (!(err instanceof KafkaResponseError) && !(err instanceof KafkaClientError && err.fault === 'unsupported')) throw err;
    log.warn({ topic, err: (err as Error).message }, `uplink checkpoint topic ${topic}: cannot read its cleanup.policy (${(err as Error).message}); if it is not compact, retention may delete checkpoints (the data read-back still decides the resume point)`);
    return 'unknown';
  }
  if (policy !== null && policy.split(',').map((s) => s.trim()).includes('compact')) return 'compacted';
  try {
    await setTopicConfig(client, topic, CLEANUP_POLICY, 'compact');
    log.warn({ topic, was: policy }, `uplink checkpoint topic ${topic} existed with cleanup.policy=${policy ?? '(unreported)'}: altered to compact`);
    return 'altered to compacted';
  } catch (err) {
    if (!(err instanceof KafkaResponseError) && !(err instanceof KafkaClientError && err.fault === 'unsupported')) throw err;
    log.error({ topic, policy, err: (err as Error).message }, `uplink checkpoint topic ${topic} has cleanup.policy=${policy ?? '(unreported)'} and altering it to compact was refused (${(err as Error).message}): set cleanup.policy=compact on the target, else retention deletes checkpoints and the resume point rests on the data read-back alone`);
    return 'not compacted';
  }
}

/** Re-initialises `txn` (KIP-360 where it can), saves its id and epoch, logs how; throws ProducerFencedError when fenced. */
export async function initProducer(txn: TransactionalProducer, store: LinkStateStore, log: Logger): Promise<{ outcome: InitOutcome; protocol: TxnProtocol }> {
  const id = txn.options.transactionalId;
  const outcome = await txn.init();
  const protocol = await txn.protocol();
  (store.state.transactional ??= {})[id] = { producerId: txn.producerId, producerEpoch: txn.producerEpoch };
  await store.save();
  const how = outcome.kind === 'bumped' ? `epoch of producer id ${outcome.from.producerId} bumped ${outcome.from.producerEpoch} → ${txn.producerEpoch} (KIP-360: the old epoch is fenced)` : `fresh producer id ${txn.producerId} epoch ${txn.producerEpoch} (${outcome.why})`;
  const v = `transactions V1 (AddPartitionsToTxn v${protocol.addPartitionsVersion}, EndTxn v${protocol.endTxnVersion}, InitProducerId v${protocol.initProducerIdVersion}); ${protocol.coordinatorAdvertisesV2 ? 'the coordinator advertises Transactions V2 (EndTxn v5), not spoken by this client' : 'the coordinator does not advertise Transactions V2'}`;
  log.info({ transactionalId: id, producerId: txn.producerId, producerEpoch: txn.producerEpoch, init: outcome.kind, protocol }, `uplink transactional producer ${id}: ${how}; ${v}`);
  return { outcome, protocol };
}
