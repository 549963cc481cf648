// OpenTelemetry: with an OTLP endpoint configured, one trace runs from the
// CLI's enqueue through the daemon's job to the native call. A small OTLP/HTTP
// (JSON) collector in the test receives the spans of both processes.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { volumeGuid } from '../dist/src/index.js';
import { CLI, createTestEnv, type TestEnv } from './support/env.js';
import { spawnDaemon, type DaemonProcess } from './support/daemon-process.js';

interface Span { traceId: string; spanId: string; parentSpanId?: string; name: string; service: string; attributes: Record<string, unknown> }

let env: TestEnv;
let collector: Server;
let daemon: DaemonProcess;
const spans: Span[] = [];
let otel: Record<string, string>;

beforeAll(async () => {
  env = await createTestEnv('tracing');
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const msg = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: (Omit<Span, 'service' | 'attributes'> & { attributes?: { key: string; value: Record<string, unknown> }[] })[] }[] }[] };
        for (const rs of msg.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              const attributes = Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
              spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, service, attributes });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  const port = (collector.address() as { port: number }).port;
  otel = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: '100' };
  daemon = spawnDaemon(env, otel);
  await daemon.ready;
});
afterAll(async () => {
  await daemon?.stop();
  await new Promise((r) => collector.close(r));
  await env.dispose();
});

it('follows a mount from the CLI enqueue to the native call in one trace', async () => {
  const run = promisify(execFile);
  await run(process.execPath, [CLI, 'mount', env.cim('traced.cim'), 'trace-1'], { env: env.childEnv(otel) });
  const isNative = (s: Span) => s.name === 'cimfs.mount' && s.attributes['cimq.volume_guid'] === volumeGuid('trace-1');
  await expect.poll(() => spans.some(isNative), { timeout: 10_000 }).toBe(true);
  const native = spans.find(isNative)!;
  expect(native.service).toBe('cimq-worker');
  expect(native.attributes['cimq.hresult']).toBe('0x0');
  const trail = spans.filter((s) => s.traceId === native.traceId);
  // The producer's side of the same trace, from the CLI process.
  expect(trail.some((s) => s.service === 'cimq-cli')).toBe(true);
  // The job's processing span, with the container, is an ancestor of the native call.
  const byId = new Map(trail.map((s) => [s.spanId, s]));
  const ancestors: Span[] = [];
  for (let p = native.parentSpanId; p && byId.has(p); p = byId.get(p)!.parentSpanId) ancestors.push(byId.get(p)!);
  expect(ancestors.some((s) => s.attributes['cimq.container_id'] === 'trace-1')).toBe(true);
  console.log(`one trace: ${trail.map((s) => `${s.service}:${s.name}`).join(' → ')}`);
});
