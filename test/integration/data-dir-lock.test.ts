// Purpose: one broker per data dir, guarded by a kernel lock on an open descriptor (flock),
// not a pid file (issue 14, finding 3): a stale pid in the lock file (a zombie, or a pid reused
// after a power cut, here pid 1 and this test's own live pid) never blocks a start; a second
// broker on the same dir is refused with a message naming the dir and the holder; kill -9 of the
// holder frees the dir for the next broker at once. Real broker processes on real files.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, startBroker, tempDir } from '../helpers/index.js';

if (!haveCommand('flock')) {
  // util-linux ships it on every Debian/Pi OS install; without it the broker falls back to a pid file.
  if (process.env.CI === 'true') t.fail('no flock command (util-linux): the data-dir lock cannot be tested');
  else t.pass('skipped: no flock command (util-linux)');
} else {
  run();
}

function run(): void {
  t.test('data-dir lock: a live but unrelated pid in an old lock file does not block start (zombie / reused pid)', async (t) => {
    for (const stalePid of [1, process.pid]) {
      const dataDir = await tempDir(t);
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(join(dataDir, 'broker.lock'), `${stalePid}\n`);
      const b = await startBroker(t, { dataDir });
      t.ok(b.listeners.kafka, `started over a lock file naming live pid ${stalePid}`);
      t.equal(await b.stop(), 0);
    }
  });

  t.test('data-dir lock: a second broker on the same dir is refused naming the dir and the holder; kill -9 of the holder frees it', async (t) => {
    const dataDir = await tempDir(t);
    const first = await startBroker(t, { dataDir });
    const holder = first.child.pid!;
    const second = await startBroker(t, { dataDir, readyTimeoutMs: 15_000 }).then(
      () => null,
      (err: Error) => err.message,
    );
    t.ok(second, 'the second broker does not start');
    t.match(second, `data dir ${dataDir} is in use by another broker (process ${holder}`, 'its message names the dir and the holder pid');
    t.notMatch(second, /listener bound|gateway listening|listener up/, 'refused before any listener bound');
    await first.kill(); // kill -9: no cleanup runs, the kernel drops the lock with the process
    const started = Date.now();
    const third = await startBroker(t, { dataDir });
    t.ok(third.listeners.kafka, `after kill -9 of the holder the next broker starts (${Date.now() - started} ms to ready)`);
    t.equal(await third.stop(), 0);
  });
}
