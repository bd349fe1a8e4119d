export { ERRORS, errorNameForKafkaCode, type ErrorName, type ErrorSpec } from './codes.js';
export { BrokerError, asBrokerError } from './broker-error.js';
