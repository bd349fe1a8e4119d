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
