import { ERRORS, type ErrorName, type ErrorSpec } from './codes.js';

/**
 * An operating error: bad input, a limit reached, a missing topic. Programmer errors are
 * plain `Error`s (or assertions) and never cross a protocol boundary as a code.
 */
export class BrokerError extends Error {
  readonly code: ErrorName;
  /**
   * INVALID_RECORD from ingest validation: which records failed (index in the batch or the
   * produce call) and why; Kafka answers them as Produce v8+ record_errors.
   */
  recordErrors?: Array<{ batchIndex: number; message: string }>;
  /** The refused records were stored in a dead-letter topic before the refusal (MQTT 3.1.1 then acknowledges). */
  deadLettered?: boolean;

  constructor(code: ErrorName, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerError';
    this.code = code;
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }

  get kafkaCode(): number {
    return ERRORS[this.code].kafka;
  }
}

/** Normalises anything thrown into a BrokerError (unknown faults become UNKNOWN_SERVER_ERROR). */
export function asBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BrokerError('UNKNOWN_SERVER_ERROR', message, { cause: err });
}
