// Purpose: the on-disk PartitionLog passes the partition-log conformance suite (conformance.ts):
// leader and follower append, read with upTo, truncation, leader epochs (KIP-101/279), clean
// reopen and reopen after kill -9 of a child process writing it.
import t from 'tap';
import { join } from 'node:path';
import { projectRoot } from '../../helpers/index.js';
import { logConformance } from './conformance.js';
import { abandon, open } from './conformance-partition-log.js';

logConformance(t, {
  name: 'PartitionLog',
  open,
  abandon,
  childModule: join(projectRoot, 'dist/test/unit/log/conformance-partition-log.js'),
});
