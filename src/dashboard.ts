// The optional web dashboard (bull-board) on the daemon's HTTP port: the
// node's queue and its jobs, read-only, so that nothing bypasses the
// processor's state machine. Loaded only when turned on.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Queue } from 'bullmq';

export const DASHBOARD_PATH = '/dashboard';

export async function createDashboard(queue: Queue, node: string): Promise<(req: IncomingMessage, res: ServerResponse) => boolean> {
  const [{ createBullBoard }, { BullMQAdapter }, { ExpressAdapter }, { default: express }] = await Promise.all([
    import('@bull-board/api'),
    import('@bull-board/api/bullMQAdapter'),
    import('@bull-board/express'),
    import('express'),
  ]);
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue, { readOnlyMode: true, displayName: `cimq node ${node}` })],
    serverAdapter,
    options: { uiConfig: { boardTitle: `cimq · ${node}` } },
  });
  const app = express();
  app.use(DASHBOARD_PATH, serverAdapter.getRouter());
  return (req, res) => {
    const url = req.url ?? '';
    if (url !== DASHBOARD_PATH && !url.startsWith(`${DASHBOARD_PATH}/`) && !url.startsWith(`${DASHBOARD_PATH}?`)) return false;
    app(req, res);
    return true;
  };
}
