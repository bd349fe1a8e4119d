// host/security: principals, the ACL model and the one authorize() seam, SCRAM and PLAIN, the
// failed-login limiter, the `security` config section and the loopback rule. It sits above the
// base layer and below the broker: the metadata records (host/broker/metadata/records.ts) carry
// its ACL bindings and SCRAM credentials; every door calls its Authorizer.
export * from './principal.js';
export * from './acl.js';
export * from './authorizer.js';
export * from './scram.js';
export * from './plain.js';
export * from './login-limiter.js';
export * from './options.js';
export * from './exposure.js';
export * from './doors.js';
export * from './origin.js';
export * from './tokens.js';
export * from './oauthbearer.js';
