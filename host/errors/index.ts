export { ERRORS, errorNameForKafkaCode, mqttAckReason, mqttDisconnectReason, REGISTRY_ERRORS, type ErrorName, type ErrorSpec, type RegistryErrorName, type RegistryErrorSpec } from './codes.js';
export { BrokerError, asBrokerError } from './broker-error.js';
