// What can go wrong when talking to a Kafka-protocol broker, in two kinds:
//
//   KafkaClientError   the exchange itself failed: could not connect, the socket closed, the
//                      request timed out, the answer did not parse, no common version, a client
//                      limit refused the request. `indefinite` says whether the request may have
//                      taken effect on the broker (it was written and no answer came): the
//                      producer must then resolve the outcome (read back), never assume either way.
//   KafkaResponseError the broker answered with an error code: the name and `retriable` come
//                      from the one error table (host/errors/codes.ts), as the server side's do.
import { ERRORS, errorNameForKafkaCode, type ErrorName } from '../../errors/index.js';

export type ClientFault = 'connect' | 'disconnected' | 'timeout' | 'protocol' | 'unsupported' | 'limit' | 'closed' | 'auth';

export class KafkaClientError extends Error {
  override name = 'KafkaClientError';
  constructor(
    readonly fault: ClientFault,
    message: string,
    /** The request was sent and no answer came: it may or may not have taken effect. */
    readonly indefinite = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class KafkaResponseError extends Error {
  override name = 'KafkaResponseError';
  readonly code: ErrorName;
  constructor(
    readonly kafkaCode: number,
    message: string,
  ) {
    const code = errorNameForKafkaCode(kafkaCode);
    super(`${message}: ${code === 'UNKNOWN_SERVER_ERROR' && kafkaCode !== -1 ? `Kafka error ${kafkaCode}` : code}`);
    this.code = code;
  }

  get retriable(): boolean {
    return ERRORS[this.code].retriable;
  }
}

/** Throws a KafkaResponseError for a non-zero code. */
export function checkCode(code: number, what: string): void {
  if (code !== ERRORS.NONE.kafka) throw new KafkaResponseError(code, what);
}

/** A fault worth retrying on a new connection (the client reconnects with backoff). */
export function isRetriable(err: unknown): boolean {
  if (err instanceof KafkaClientError) return err.fault === 'connect' || err.fault === 'disconnected' || err.fault === 'timeout';
  if (err instanceof KafkaResponseError) return err.retriable;
  return false;
}
