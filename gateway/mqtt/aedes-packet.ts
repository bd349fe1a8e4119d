// The shape of a publish (and of a will) as aedes hands it around (aedes-packet), shared by the
// persistence and the fenced-node wills without either importing the other.

/** A publish as aedes hands it around. */
export interface AedesPacket {
  cmd: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  /** MQTT 5 properties (a will's, or a publish's). */
  properties?: Record<string, unknown>;
  [k: string]: unknown;
}
