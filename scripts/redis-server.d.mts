export function redisAnswers(url: string): Promise<boolean>;
export function freePort(): Promise<number>;
export function haveRedisServer(): boolean;
export interface RedisServer {
  url: string;
  port: number;
  /** SIGTERM (an AOF is flushed) and wait for the process to end. */
  stop(): Promise<void>;
  /** Start again on the same port and directory. */
  start(): Promise<void>;
}
export function startRedisServer(args?: string[], port?: number): Promise<RedisServer>;
