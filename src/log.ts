// Structured JSON logs (pino); human-readable lines when stdout is a terminal.
import { pino, type Logger } from 'pino';

export function createLogger(level = 'info', opts: { pretty?: boolean; name?: string } = {}): Logger {
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  return pino({
    level,
    name: opts.name ?? 'cimq',
    // Secrets must never reach a log line, whatever an error message embeds.
    redact: { paths: ['redisUrl', 'password', '*.password'], censor: '***' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}
