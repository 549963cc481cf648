// Health over HTTP for supervisors and probes: /healthz (the process is
// alive) and /readyz (it can do its job: Redis reachable, node lease held,
// pool up, no stuck native call).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Health {
  ready: boolean;
  /** Why not ready; empty when ready. */
  reasons: string[];
  [k: string]: unknown;
}

export async function startHealthServer(host: string, port: number, health: () => Health): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/healthz' && path !== '/readyz')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /readyz\n');
      return;
    }
    const h = health();
    const status = path === '/healthz' || h.ready ? 200 : 503;
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(h)}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new Error(`health port ${host}:${port} is in use; set CIMQ_HTTP_PORT to a free port (0 picks one) or "off"`)
        : err);
    });
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function serverPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
