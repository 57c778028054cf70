-- requeue.lua: move dead-lettered jobs back to the queue as fresh jobs (attempt 1).
--
-- KEYS[1] dead       LIST  dead-lettered ids
-- KEYS[2] dead_info  HASH  id -> JSON
-- KEYS[3] attempts   HASH  id -> next attempt number
-- KEYS[4] jobs       HASH  id -> envelope
-- KEYS[5] pending    LIST  ids waiting
-- ARGV[1] 'all' (every dead letter, oldest first) or 'ids'; then the ids
--
-- Returns how many jobs went back to the queue.
local moved = 0
local function requeue(id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  if redis.call('HEXISTS', KEYS[4], id) == 1 then
    redis.call('LPUSH', KEYS[5], id)
    moved = moved + 1
  end
end
if ARGV[1] == 'all' then
  local id = redis.call('RPOP', KEYS[1])
  while id do
    requeue(id)
    id = redis.call('RPOP', KEYS[1])
  end
else
  for i = 2, #ARGV do
    if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
      requeue(ARGV[i])
    end
  end
end
return moved
