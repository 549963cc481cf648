// The daemon's HTTP port: /healthz (the process is alive), /readyz (it can
// do its job: Redis reachable, node lease held, pool up, no stuck native
// call), /metrics (Prometheus), and the dashboard when it is on.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Health {
  ready: boolean;
  /** Why not ready; empty when ready. */
  reasons: string[];
  [k: string]: unknown;
}

export interface HttpRoutes {
  health: () => Health;
  /** Prometheus text exposition. */
  metrics: () => Promise<string>;
  /** Anything else (the dashboard, when on); returns false when it did not answer. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export async function startHttpServer(host: string, port: number, routes: HttpRoutes): Promise<Server> {
  const { health } = routes;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      routes.metrics().then(
        (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
      return;
    }
    if (req.method !== 'GET' || (path !== '/healthz' && path !== '/readyz')) {
      if (routes.fallback?.(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
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
