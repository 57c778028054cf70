-- reply.lua: store a job's final outcome for its producer and wake it.
--
-- KEYS[1] result   STRING  `result:<id>`: the outcome (JSON), for `ttl` ms
-- KEYS[2] replies  LIST    `replies:<channel>`: the producer's reply channel
-- ARGV[1] the job's id  ARGV[2] the outcome (JSON)  ARGV[3] ttl (ms)
--
-- The producer blocks on its channel (`BLPOP`), so the push wakes it at once; the
-- entry is `<id>|<outcome>`, so it needs no second read. Both keys expire after the
-- TTL: a producer that stopped waiting, or died, leaves nothing behind beyond it.
-- Returns 1.
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('RPUSH', KEYS[2], ARGV[1] .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
