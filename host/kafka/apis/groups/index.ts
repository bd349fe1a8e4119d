// The consumer-group APIs of the Kafka listener, registered by host/kafka/apis/index.ts.
// Each file holds one API: its version history, request/response schemas and handler.
import type { ApiHandler } from '../types.js';
import { findCoordinator } from './find-coordinator.js';
import { joinGroup } from './join-group.js';
import { syncGroup } from './sync-group.js';
import { heartbeat } from './heartbeat.js';
import { leaveGroup } from './leave-group.js';
import { offsetCommit } from './offset-commit.js';
import { offsetFetch } from './offset-fetch.js';
import { listGroups } from './list-groups.js';
import { describeGroups } from './describe-groups.js';
import { deleteGroups } from './delete-groups.js';

export const groupApis: ApiHandler[] = [findCoordinator, joinGroup, syncGroup, heartbeat, leaveGroup, offsetCommit, offsetFetch, listGroups, describeGroups, deleteGroups];
