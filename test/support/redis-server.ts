// The private redis-server helper shared with the benchmark.
export { freePort, haveRedisServer, redisAnswers, startRedisServer, type RedisServer } from '../../scripts/redis-server.mjs';
