// The one authorization seam (issue 10): `authorize(principal, operation, resource)`. Every
// door asks it before acting — Kafka's handlers, MQTT (gateway/mqtt/auth.ts), HTTP and WebSocket
// (gateway/ws/auth.ts), the schema registry (host/schemas/auth.ts), all through one instance
// per node (doors.ts) — and the answer depends only on the principal, the ACLs in the metadata image and
// the configuration, never on the door.
//
// Rules, in order:
//   1. A super-user (security.superUsers) may do everything.
//   2. Internal topics (`__*`, `_schemas`): reading one needs an ACL that names it (a literal ACL
//      on the name, or a prefixed one starting with `_`): a `*`-wide grant given for user topics
//      does not open them, and authorization off does not either. (Writing, creating, deleting,
//      growing and reconfiguring them is never a client's: the broker refuses those itself, for
//      every door and every principal, in host/broker/topic-admin.ts and its write path.)
//   3. Authorization off (security.authorization: false): everything else is allowed, the
//      behaviour of a broker without an authorizer.
//   4. Authorization on: a matching DENY refuses (deny wins); else a matching ALLOW grants; else
//      refused (Kafka's allow.everyone.if.no.acl.found=false).
import { isAnonymous, principalText, type Principal } from './principal.js';
import { grantingOperations, Operation, patternMatches, Permission, ResourceType, WILDCARD, type AclBinding, type Resource } from './acl.js';

export interface AuthorizerOptions {
  /** ACLs decide (true), or every principal may do everything but read internal topics (false). */
  authorization: boolean;
  /** `User:name` texts that bypass every check. */
  superUsers: readonly string[];
}

/** Topics that belong to the broker (same rule as host/broker/topic-name.ts, which imports nothing from here). */
export function isInternalTopicName(name: string): boolean {
  return name.startsWith('__') || name === '_schemas';
}

export class Authorizer {
  private readonly superUsers: ReadonlySet<string>;

  constructor(
    private readonly options: AuthorizerOptions,
    /** The ACLs as the metadata image has them now (read on every decision: no cache to go stale). */
    private readonly acls: () => readonly AclBinding[],
  ) {
    this.superUsers = new Set(options.superUsers);
  }

  get enabled(): boolean {
    return this.options.authorization;
  }

  isSuperUser(principal: Principal): boolean {
    return !isAnonymous(principal) && this.superUsers.has(principalText(principal));
  }

  /** May `principal`, connected from `host`, perform `operation` on `resource`? */
  authorize(principal: Principal, operation: number, resource: Resource, host = '*'): boolean {
    if (this.isSuperUser(principal)) return true;
    const internal = operation === Operation.READ && resource.type === ResourceType.TOPIC && isInternalTopicName(resource.name);
    if (!internal && !this.options.authorization) return true;
    const who = principalText(principal);
    const granting = grantingOperations(operation);
    let allowed = false;
    for (const b of this.acls()) {
      if (b.resourceType !== resource.type || !patternMatches(b, resource.name)) continue;
      if (b.principal !== who && b.principal !== 'User:*') continue;
      if (b.host !== '*' && b.host !== host) continue;
      if (b.permission === Permission.DENY) {
        // A deny of the operation itself or of ALL refuses; a deny of READ does not refuse DESCRIBE.
        if (b.operation === operation || b.operation === Operation.ALL) return false;
        continue;
      }
      if (!granting.includes(b.operation)) continue;
      // Rule 2: internal topics open only to an ACL that names them.
      if (internal && (b.resourceName === WILDCARD || !b.resourceName.startsWith('_'))) continue;
      allowed = true;
    }
    return allowed;
  }

  /** Some resource of `type` allows `operation` (Kafka's rule for InitProducerId without a cluster grant: WRITE on any topic). */
  authorizeAny(principal: Principal, operation: number, type: number, host = '*'): boolean {
    if (this.isSuperUser(principal) || !this.options.authorization) return true;
    const who = principalText(principal);
    const granting = grantingOperations(operation);
    return this.acls().some((b) => b.resourceType === type && b.permission === Permission.ALLOW && (b.principal === who || b.principal === 'User:*') && (b.host === '*' || b.host === host) && granting.includes(b.operation));
  }
}
