// Series keys of the metrics registry: one series per label set whatever the key order, and
// label values escaped as the Prometheus text format requires (backslash, quote, newline).
import t from 'tap';
import { MetricsRegistry } from '../../../host/metrics/registry.js';

t.test('label order does not make a second series', async (t) => {
  const m = new MetricsRegistry();
  const c = m.counter('x_total', 'x');
  c.inc({ a: '1', b: '2' });
  c.inc({ b: '2', a: '1' });
  t.equal(c.value({ a: '1', b: '2' }), 2);
  t.match(m.render(), /^x_total\{a="1",b="2"\} 2$/m);
});

t.test('label values are escaped; plain ones are left as they are', async (t) => {
  const m = new MetricsRegistry();
  const c = m.counter('y_total', 'y');
  c.inc({ reason: 'a\\b"c\nd' });
  c.inc({ reason: 'plain' }, 3);
  const text = m.render();
  t.ok(text.includes('y_total{reason="a\\\\b\\"c\\nd"} 1'), 'backslash, quote and newline escaped');
  t.ok(text.includes('y_total{reason="plain"} 3'));
  t.equal(c.value({ reason: 'a\\b"c\nd' }), 1);
});

t.test('one label: the remembered key names the same series after the cache is emptied at its bound', async (t) => {
  const m = new MetricsRegistry();
  const c = m.counter('z_total', 'z');
  const g = m.gauge('z_gauge', 'z');
  c.inc({ topic: 'a"b' });
  g.set(5, { topic: 'a"b' });
  // far more distinct values than the cache keeps (4 × 2,000), across two metrics: it is emptied and refilled
  for (let i = 0; i < 9_000; i++) g.set(i, { other: `v${i}` });
  c.inc({ topic: 'a"b' });
  t.equal(c.value({ topic: 'a"b' }), 2, 'the series found again after the cache was emptied');
  t.equal(g.value({ topic: 'a"b' }), 5, 'a gauge with the same label set has its own series');
  // a label that is not a string takes the built path and still finds its series
  c.inc({ topic: 7 as unknown as string });
  c.inc({ topic: '7' });
  t.equal(c.value({ topic: '7' }), 2, 'a number and its string name one series, as before');
  // an inherited property is not a label
  const proto = { inherited: 'x' };
  const own = Object.create(proto) as Record<string, string>;
  own.topic = 'a"b';
  c.inc(own);
  t.equal(c.value({ topic: 'a"b' }), 3);
  t.ok(m.render().includes('z_total{topic="a\\"b"} 3'), 'escaped once, in the cached key too');
});
