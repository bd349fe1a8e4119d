// The schema registry at the edge (issue 15): a Confluent-compatible REST listener, the state
// in the compacted internal topic `_schemas`, compatibility checks, and ingest validation
// installed at the broker's one write path. docs/schemas.md describes what is served.
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import { startRegistryServer, type RegistryListener } from './http.js';
import { validateSchemaRegistryOptions, type SchemaRegistryOptions } from './options.js';
import { SchemaRegistry } from './registry.js';
import type { DoorSecurity, TokenConfig } from '../security/index.js';
import { RegistryAuth } from './auth.js';
import { IngestValidator } from './validate.js';

export { defaultSchemaRegistryOptions, schemasSchema, validateSchemaRegistryOptions, type SchemaRegistryOptions } from './options.js';
export { SchemaRegistry } from './registry.js';
export { IngestValidator, decodeWireValue, wireSchemaId } from './validate.js';
export { SCHEMAS_TOPIC } from './store.js';

export interface RunningSchemas {
  registry: SchemaRegistry;
  validator: IngestValidator;
  /** Undefined when `port` is -1. */
  listener: RegistryListener | undefined;
  close(): Promise<void>;
}

/** Replays `_schemas`, installs the validation hook, starts the listener (unless port -1). */
export async function startSchemas(broker: Broker, options: Partial<SchemaRegistryOptions>, deps: { logger: Logger; metrics: MetricsRegistry; security?: DoorSecurity; tokens?: readonly TokenConfig[] }): Promise<RunningSchemas> {
  const o = validateSchemaRegistryOptions(options);
  const log = deps.logger.child({ component: 'schemas' });
  const registry = await SchemaRegistry.open(broker, o, log);
  const validator = new IngestValidator(registry, broker, log, deps.metrics);
  broker.setAppendValidator(validator);
  let listener: RegistryListener | undefined;
  try {
    // one authorizer, login limiter and user store with every other door (host/schemas/auth.ts)
    const auth = deps.security ? new RegistryAuth({ security: deps.security, tokens: deps.tokens ?? [], host: o.host }) : undefined;
    listener = o.port === -1 ? undefined : await startRegistryServer(registry, log, deps.metrics, auth);
  } catch (err) {
    broker.setAppendValidator(undefined);
    throw err;
  }
  return {
    registry,
    validator,
    listener,
    async close() {
      await listener?.close();
      await registry.idle();
      broker.setAppendValidator(undefined);
    },
  };
}
