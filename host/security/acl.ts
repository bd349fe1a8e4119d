// The ACL model, Kafka's: a binding is (resource pattern) × (principal, host, operation,
// permission). A resource pattern is a type (topic, group, cluster, transactional id), a name
// and a pattern type (literal: the name exactly, or `*` for every name; prefixed: every name
// starting with it). The numbers are Kafka's wire values (org.apache.kafka.common.acl and
// .resource), so DescribeAcls/CreateAcls/DeleteAcls carry them unchanged and Kafka tooling
// (kafka-acls.sh, confluent_kafka's AdminClient) works.
//
// Decision (authorizer.ts): deny wins over allow; ALL matches every operation; READ, WRITE,
// DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's implied
// operations); principal `User:*` and host `*` match everyone.

export const ResourceType = { UNKNOWN: 0, ANY: 1, TOPIC: 2, GROUP: 3, CLUSTER: 4, TRANSACTIONAL_ID: 5, DELEGATION_TOKEN: 6 } as const;
export const PatternType = { UNKNOWN: 0, ANY: 1, MATCH: 2, LITERAL: 3, PREFIXED: 4 } as const;
export const Operation = {
  UNKNOWN: 0,
  ANY: 1,
  ALL: 2,
  READ: 3,
  WRITE: 4,
  CREATE: 5,
  DELETE: 6,
  ALTER: 7,
  DESCRIBE: 8,
  CLUSTER_ACTION: 9,
  DESCRIBE_CONFIGS: 10,
  ALTER_CONFIGS: 11,
  IDEMPOTENT_WRITE: 12,
} as const;
export const Permission = { UNKNOWN: 0, ANY: 1, DENY: 2, ALLOW: 3 } as const;


/** The one cluster resource's name (Kafka's `kafka-cluster`). */
export const CLUSTER_NAME = 'kafka-cluster';
/** A literal pattern with this name matches every resource of its type. */
export const WILDCARD = '*';

export interface Resource {
  type: number; // ResourceType (TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID)
  name: string;
}

export interface AclBinding {
  resourceType: number;
  resourceName: string;
  patternType: number; // LITERAL or PREFIXED
  principal: string; // `User:name`, `User:*`
  host: string; // `*` or an address
  operation: number;
  permission: number; // ALLOW or DENY
}

/** A DescribeAcls/DeleteAcls filter: ANY (1) and null match everything; MATCH matches what would apply to a name. */
export interface AclFilter {
  resourceType: number;
  resourceName: string | null;
  patternType: number;
  principal: string | null;
  host: string | null;
  operation: number;
  permission: number;
}

const inRange = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;

/** Why a binding cannot be stored (CreateAcls answers INVALID_REQUEST with it), or undefined. */
export function bindingProblem(b: AclBinding): string | undefined {
  if (!inRange(b.resourceType, ResourceType.TOPIC, ResourceType.TRANSACTIONAL_ID)) return `resource type ${b.resourceType} is not topic (2), group (3), cluster (4) or transactional id (5)`;
  if (b.patternType !== PatternType.LITERAL && b.patternType !== PatternType.PREFIXED) return `pattern type ${b.patternType} is not literal (3) or prefixed (4)`;
  if (typeof b.resourceName !== 'string' || b.resourceName === '') return 'resource name is empty';
  if (b.resourceType === ResourceType.CLUSTER && b.resourceName !== CLUSTER_NAME) return `the cluster resource is named ${CLUSTER_NAME}, not ${b.resourceName}`;
  if (b.patternType === PatternType.PREFIXED && b.resourceName === WILDCARD) return 'a prefixed pattern cannot be "*" (use a literal "*")';
  if (typeof b.principal !== 'string' || !/^User:.+$/.test(b.principal)) return `principal "${b.principal}" is not User:<name> (or User:*)`;
  if (typeof b.host !== 'string' || b.host === '') return 'host is empty (use "*" for every host)';
  if (!inRange(b.operation, Operation.ALL, Operation.IDEMPOTENT_WRITE)) return `operation ${b.operation} is not one of ALL (2) .. IDEMPOTENT_WRITE (12)`;
  if (b.permission !== Permission.ALLOW && b.permission !== Permission.DENY) return `permission ${b.permission} is not DENY (2) or ALLOW (3)`;
  return undefined;
}

export function sameBinding(a: AclBinding, b: AclBinding): boolean {
  return a.resourceType === b.resourceType && a.resourceName === b.resourceName && a.patternType === b.patternType && a.principal === b.principal && a.host === b.host && a.operation === b.operation && a.permission === b.permission;
}

/** The binding's pattern covers `name` (a literal `*` covers every name). */
export function patternMatches(b: Pick<AclBinding, 'resourceName' | 'patternType'>, name: string): boolean {
  if (b.patternType === PatternType.PREFIXED) return name.startsWith(b.resourceName);
  return b.resourceName === WILDCARD || b.resourceName === name;
}

/** The filter selects the binding (DescribeAcls, DeleteAcls). */
export function filterMatches(f: AclFilter, b: AclBinding): boolean {
  if (f.resourceType !== ResourceType.ANY && f.resourceType !== b.resourceType) return false;
  if (f.patternType === PatternType.MATCH) {
    if (f.resourceName !== null && !patternMatches(b, f.resourceName)) return false;
  } else {
    if (f.patternType !== PatternType.ANY && f.patternType !== b.patternType) return false;
    if (f.resourceName !== null && f.resourceName !== b.resourceName) return false;
  }
  if (f.principal !== null && f.principal !== b.principal) return false;
  if (f.host !== null && f.host !== b.host) return false;
  if (f.operation !== Operation.ANY && f.operation !== b.operation) return false;
  if (f.permission !== Permission.ANY && f.permission !== b.permission) return false;
  return true;
}

/** Why a filter is unusable (DescribeAcls/DeleteAcls answer INVALID_REQUEST), or undefined. */
export function filterProblem(f: AclFilter): string | undefined {
  if (!inRange(f.resourceType, ResourceType.ANY, ResourceType.TRANSACTIONAL_ID)) return `resource type filter ${f.resourceType} is unknown`;
  if (!inRange(f.patternType, PatternType.ANY, PatternType.PREFIXED)) return `pattern type filter ${f.patternType} is unknown`;
  if (!inRange(f.operation, Operation.ANY, Operation.IDEMPOTENT_WRITE)) return `operation filter ${f.operation} is unknown`;
  if (!inRange(f.permission, Permission.ANY, Permission.ALLOW)) return `permission filter ${f.permission} is unknown`;
  return undefined;
}

/** Operations that, granted, also grant `op` (Kafka's implied operations), `op` itself and ALL included. */
export function grantingOperations(op: number): number[] {
  if (op === Operation.DESCRIBE) return [op, Operation.ALL, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER];
  if (op === Operation.DESCRIBE_CONFIGS) return [op, Operation.ALL, Operation.ALTER_CONFIGS];
  return [op, Operation.ALL];
}

const NAMES: Record<string, Record<number, string>> = {
  resource: invert(ResourceType),
  pattern: invert(PatternType),
  operation: invert(Operation),
  permission: invert(Permission),
};

function invert(o: Record<string, number>): Record<number, string> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [v, k]));
}

/** Human form for logs and the CLI: `ALLOW User:alice READ topic:orders (prefixed) from *`. */
export function bindingText(b: AclBinding): string {
  const pattern = b.patternType === PatternType.PREFIXED ? ' (prefixed)' : '';
  return `${NAMES.permission[b.permission]} ${b.principal} ${NAMES.operation[b.operation]} ${NAMES.resource[b.resourceType]?.toLowerCase()}:${b.resourceName}${pattern} from ${b.host}`;
}

/** Parses a name such as `read`, `describe_configs`, `topic`, `prefixed`, `deny` (case-insensitive) against one of the tables. */
export function codeOf(table: 'resource' | 'pattern' | 'operation' | 'permission', name: string): number | undefined {
  const wanted = name.toUpperCase().replace(/-/g, '_');
  const alias: Record<string, string> = { TRANSACTIONALID: 'TRANSACTIONAL_ID', DESCRIBECONFIGS: 'DESCRIBE_CONFIGS', ALTERCONFIGS: 'ALTER_CONFIGS', IDEMPOTENTWRITE: 'IDEMPOTENT_WRITE' };
  const key = alias[wanted] ?? wanted;
  const entry = Object.entries(NAMES[table]).find(([, n]) => n === key);
  return entry ? Number(entry[0]) : undefined;
}
