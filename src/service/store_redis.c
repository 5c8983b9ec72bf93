/* store_redis.c - the store on Redis (see store_redis.h). Keys, all under
 * the prefix "cs:":
 *   jobs            Stream of queued instances (job, inst, v = feed position
 *                   at intake), read through the consumer group cs:workers
 *   job:<inst>:<id> hash: state (0 queued, 1 placed, 2 unschedulable), body,
 *                   recv, dec, node, result, eid (its current stream entry),
 *                   handed (times given to a worker), res (its reservation,
 *                   "node cpu mem gpu at cseq mseq", while it holds one),
 *                   out/oa/oc/on (its result's outbox entry: id, attempts,
 *                   created, next attempt), cl/clx (the outbox id
 *                   being sent and the claim's end, Redis ms; see
 *                   SC_CLAIM). A hash with only cl/clx is the claim of a
 *                   deleted instance whose result is still being sent: it
 *                   expires with the claim and is not a job
 *   node:<id>       hash: doc, last, cap_cpu/cap_mem/cap_gpu, cpu_pct/mem_pct,
 *                   res_* (sum of reservations), after_* and *_seq (the
 *                   reservations made since the last usage figure: the same
 *                   free-capacity rule as the cluster table in memory)
 *   nodes, noderes:<id>   the node ids, and each node's reserving members
 *                   (a snapshot finds every reservation through its node:
 *                   one set of them all would be one more write a
 *                   placement, into a set as large as the cluster's load)
 *   outbox:due      the instances ("<inst>:<job>") with a result to deliver,
 *                   by next attempt; the payload is the job hash's
 *                   `result`; outbox:seq numbers the entries
 *   layout          "3" once reservations and outbox entries live in the
 *                   job hashes (see migrate)
 *   events, ev:seq  the change feed: n (node report), h (a report that
 *                   repeated the stored document: its time and usage
 *                   flags only), d (node deleted),
 *                   r (reservation: d = "job inst node cpu mem gpu at", one
 *                   field, as every process's copy reads them all), x
 *                   (release), each with its seq
 *   ev:vseq         the seq of the last change other than a reservation: a
 *                   queued instance's v, the position a worker's copy must
 *                   reach before ranking it
 * Every write touching more than one key is a Lua script (atomic). A member
 * is "<instance>:<job id>": the instance first, since job ids may hold ':'.
 * Not for Redis Cluster (scripts touch keys of many slots); Sentinel works.
 * The replies are read by redis_reply.c (pure, fuzzed on its own). */
#include "store_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis_reply.h"
#include "store_impl.h"

#define POOL_N 16
#define BLOCK_CHUNK_MS 200
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 2.0
#define FOLLOW_BATCH 512
#define TAKE_BATCH 16 /* stream entries read at once */
/* Entries read and not yet taken. Several worker threads read at once, so
 * each read reserves its room here first; a read that finds little room
 * asks for fewer entries (at least the one its caller takes). */
#define BUF_CAP (4 * TAKE_BATCH)

#define K_STREAM "cs:jobs"
#define K_GROUP "cs:workers"
#define K_EVENTS "cs:events"

/* Shared Lua helpers, prepended to every script (see the comment above). */
#define LUA_LIB                                                                                    \
    "local P = 'cs:'\n"                                                                            \
    "local function ev(t, ...)\n"                                                                  \
    "  local seq = redis.call('INCR', P..'ev:seq')\n"                                              \
    "  if t ~= 'r' then redis.call('SET', P..'ev:vseq', seq) end\n"                                \
    "  redis.call('XADD', P..'events', 'MAXLEN', '~', 100000, '*', 't', t, 'seq', seq, ...)\n"     \
    "end\n"                                                                                        \
    "local function res_drop(m)\n"                                                                 \
    "  local jk = P..'job:'..m\n"                                                                  \
    "  local packed = redis.call('HGET', jk, 'res')\n"                                             \
    "  if not packed then return 0 end\n"                                                          \
    "  local r = {}\n"                                                                             \
    "  for w in string.gmatch(packed, '%S+') do r[#r + 1] = w end\n"                               \
    "  local nk = P..'node:'..r[1]\n"                                                              \
    "  if redis.call('EXISTS', nk) == 1 then\n"                                                    \
    "    redis.call('HINCRBY', nk, 'res_cpu', 0 - tonumber(r[2]))\n"                               \
    "    redis.call('HINCRBY', nk, 'res_mem', 0 - tonumber(r[3]))\n"                               \
    "    redis.call('HINCRBY', nk, 'res_gpu', 0 - tonumber(r[4]))\n"                               \
    "    local s = redis.call('HMGET', nk, 'cpu_seq', 'mem_seq')\n"                                \
    "    if r[6] == (s[1] or '0') then redis.call('HINCRBY', nk, 'after_cpu', 0 - "                \
    "tonumber(r[2])) "                                                                             \
    "end\n"                                                                                        \
    "    if r[7] == (s[2] or '0') then redis.call('HINCRBY', nk, 'after_mem', 0 - "                \
    "tonumber(r[3])) "                                                                             \
    "end\n"                                                                                        \
    "  end\n"                                                                                      \
    "  redis.call('SREM', P..'noderes:'..r[1], m)\n"                                               \
    "  redis.call('HDEL', jk, 'res')\n"                                                            \
    "  local sep = string.find(m, ':', 1, true)\n"                                                 \
    "  ev('x', 'job', string.sub(m, sep + 1), 'inst', string.sub(m, 1, sep - 1))\n"                \
    "  return 1\n"                                                                                 \
    "end\n"                                                                                        \
    "local function outbox_add(job, inst, now, next_at)\n"                                         \
    "  local id = redis.call('INCR', P..'outbox:seq')\n"                                           \
    "  local m = inst..':'..job\n"                                                                 \
    "  redis.call('ZADD', P..'outbox:due', next_at, m)\n"                                          \
    "  redis.call('HSET', P..'job:'..m, 'out', id, 'oa', 0, 'oc', now, 'on', next_at)\n"           \
    "  return id\n"                                                                                \
    "end\n"                                                                                        \
    "local function outbox_drop_job(m)\n"                                                          \
    "  local jk = P..'job:'..m\n"                                                                  \
    "  if redis.call('HEXISTS', jk, 'out') == 1 then\n"                                            \
    "    redis.call('ZREM', P..'outbox:due', m)\n"                                                 \
    "    redis.call('HDEL', jk, 'out', 'oa', 'oc', 'on')\n"                                        \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function claim_release(jk, id, cl)\n"                                                   \
    "  if cl == id then redis.call('HDEL', jk, 'cl', 'clx') end\n"                                 \
    "end\n"                                                                                        \
    "local function entry_drop(eid)\n"                                                             \
    "  if eid and eid ~= '' then\n"                                                                \
    "    redis.call('XACK', P..'jobs', P..'workers', eid)\n"                                       \
    "    redis.call('XDEL', P..'jobs', eid)\n"                                                     \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function entry_add(job, inst, v, body, recv, handed)\n"                                 \
    "  return redis.call('XADD', P..'jobs', '*', 'job', job, 'inst', inst, 'v', v,\n"              \
    "                    'body', body, 'recv', recv, 'a', handed)\n"                               \
    "end\n"                                                                                        \
    "local function usage_restart(nk, uc, cpu_pct, um, mem_pct)\n"                                 \
    "  if uc == '1' then\n"                                                                        \
    "    redis.call('HSET', nk, 'cpu_pct', cpu_pct, 'after_cpu', 0)\n"                             \
    "    redis.call('HINCRBY', nk, 'cpu_seq', 1)\n"                                                \
    "  end\n"                                                                                      \
    "  if um == '1' then\n"                                                                        \
    "    redis.call('HSET', nk, 'mem_pct', mem_pct, 'after_mem', 0)\n"                             \
    "    redis.call('HINCRBY', nk, 'mem_seq', 1)\n"                                                \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function queue(job, inst)\n"                                                            \
    "  local b = redis.call('HMGET', P..'job:'..inst..':'..job, 'body', 'recv', 'handed')\n"       \
    "  local v = redis.call('GET', P..'ev:vseq') or '0'\n"                                         \
    "  return entry_add(job, inst, v, b[1], b[2], b[3] or '0')\n"                                  \
    "end\n"

enum {
    SC_ENQUEUE,
    SC_REQUEUE,
    SC_PLACE,
    SC_FINISH,
    SC_DELETE,
    SC_NODE_PUT,
    SC_NODE_TOUCH,
    SC_NODE_DELETE,
    SC_LOAD,
    SC_DUE,
    SC_DONE,
    SC_RETRY,
    SC_CLAIM,
    SC_COUNT
};

static const char *const SCRIPT[SC_COUNT] = {
    /* Groups of five: job, body, intake time, first instance, count. The
     * API's concurrent intakes share one call (see enq_submit); the
     * feed position is one for the whole call, which is atomic. */
    [SC_ENQUEUE] = LUA_LIB
    "local out = {}\n"
    "local v = redis.call('GET', P..'ev:vseq') or '0'\n"
    "for g = 1, #ARGV, 5 do\n"
    "  local job, body, recv = ARGV[g], ARGV[g + 1], ARGV[g + 2]\n"
    "  local first = tonumber(ARGV[g + 3])\n"
    "  for inst = first, first + tonumber(ARGV[g + 4]) - 1 do\n"
    "    local jk = P..'job:'..inst..':'..job\n"
    "    local j = redis.call('HMGET', jk, 'state', 'cl')\n"
    "    if j[1] then\n"
    "      out[#out + 1] = 1\n"
    "    else\n"
    "      if j[2] then redis.call('PERSIST', jk) end\n"
    "      local eid = entry_add(job, inst, v, body, recv, '0')\n"
    "      redis.call('HSET', jk, 'state', 0, 'body', body, 'recv', recv, 'handed', 0,\n"
    "                 'node', '', 'eid', eid)\n"
    "      out[#out + 1] = 0\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n",
    [SC_REQUEUE] =
        LUA_LIB "local m = ARGV[2]..':'..ARGV[1]\n"
                "local jk = P..'job:'..m\n"
                "local h = redis.call('HMGET', jk, 'state', 'node')\n"
                "if not h[1] then return 1 end\n"
                "if ARGV[3] ~= '' and (h[1] ~= '1' or h[2] ~= ARGV[3]) then return 1 end\n"
                "if h[1] == '0' then return 0 end\n"
                "res_drop(m)\n"
                "outbox_drop_job(m)\n"
                "redis.call('HINCRBY', jk, 'handed', 1)\n"
                "local eid = queue(ARGV[1], ARGV[2])\n"
                "redis.call('HSET', jk, 'state', 0, 'node', '', 'eid', eid)\n"
                "redis.call('HDEL', jk, 'result', 'dec')\n"
                "return 0\n",
    /* Groups of eleven, one per placement, committed in order: job,
     * instance, node, cpu, mem, gpu, at, now, ttl, result, lease. One HMGET
     * reads everything the capacity check and the counters need, and one
     * HSET writes the counters back: every redis.call costs about a
     * microsecond of Redis's time on top of the command. A queued instance
     * holds no reservation (requeue, node delete and delete drop it first),
     * so its `res`, read with its state, is there only if a script failed
     * half way, which Redis does not roll back: then it is dropped before
     * the node's counters are read, so a retry cannot count it twice. */
    [SC_PLACE] = LUA_LIB
    "local function place1(o)\n"
    "  local m = ARGV[o + 2]..':'..ARGV[o + 1]\n"
    "  local jk = P..'job:'..m\n"
    "  local h = redis.call('HMGET', jk, 'state', 'node', 'eid', 'res')\n"
    "  if not h[1] then return 3, '' end\n"
    "  if h[1] ~= '0' then return 2, h[2] or '' end\n"
    "  if h[4] then res_drop(m) end\n"
    "  local nk = P..'node:'..ARGV[o + 3]\n"
    "  local n = redis.call('HMGET', nk, 'last', 'cap_cpu', 'cap_mem', 'cap_gpu', 'res_cpu',\n"
    "                       'res_mem', 'res_gpu', 'cpu_pct', 'mem_pct', 'after_cpu', 'after_mem',\n"
    "                       'cpu_seq', 'mem_seq')\n"
    "  local now = tonumber(ARGV[o + 8])\n"
    "  if not n[1] or now - tonumber(n[1]) > tonumber(ARGV[o + 9]) then return 1, 'inactive' end\n"
    "  local cpu, mem, gpu = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])\n"
    "  local rc, rm, rg = tonumber(n[5] or 0), tonumber(n[6] or 0), tonumber(n[7] or 0)\n"
    "  local ac, am = tonumber(n[10] or 0), tonumber(n[11] or 0)\n"
    "  local fc = tonumber(n[2]) - rc\n"
    "  if n[8] then\n"
    "    local by = math.floor(tonumber(n[2]) * (1.0 - tonumber(n[8]) / 100.0)) - ac\n"
    "    if by < fc then fc = by end\n"
    "  end\n"
    "  local fm = tonumber(n[3]) - rm\n"
    "  if n[9] then\n"
    "    local by = math.floor(tonumber(n[3]) * (1.0 - tonumber(n[9]) / 100.0)) - am\n"
    "    if by < fm then fm = by end\n"
    "  end\n"
    "  local fg = tonumber(n[4]) - rg\n"
    "  if fc < 0 then fc = 0 end\n"
    "  if fm < 0 then fm = 0 end\n"
    "  if fg < 0 then fg = 0 end\n"
    "  if not (cpu <= fc and mem <= fm and gpu <= fg) then return 1, 'full' end\n"
    "  redis.call('HSET', nk, 'res_cpu', rc + cpu, 'res_mem', rm + mem, 'res_gpu', rg + gpu,\n"
    "             'after_cpu', ac + cpu, 'after_mem', am + mem)\n"
    "  redis.call('SADD', P..'noderes:'..ARGV[o + 3], m)\n"
    "  ev('r', 'd', table.concat(ARGV, ' ', o + 1, o + 7))\n"
    "  local id = redis.call('INCR', P..'outbox:seq')\n"
    "  local nx = now + tonumber(ARGV[o + 11])\n"
    "  redis.call('ZADD', P..'outbox:due', nx, m)\n"
    "  redis.call('HSET', jk, 'state', 1, 'node', ARGV[o + 3], 'result', ARGV[o + 10], 'dec', "
    "ARGV[o + 8],\n"
    "             'out', id, 'oa', 0, 'oc', ARGV[o + 8], 'on', nx, 'res', table.concat({ARGV[o + "
    "3], ARGV[o + 4], ARGV[o + 5], "
    "ARGV[o + 6], ARGV[o + 7], n[12] or '0', n[13] or '0'}, ' '))\n"
    "  entry_drop(h[3])\n"
    "  return 0, tostring(id)\n"
    "end\n"
    "local out = {}\n"
    "for o = 0, #ARGV - 1, 11 do\n"
    "  local rc, what = place1(o)\n"
    "  out[#out + 1] = rc\n"
    "  out[#out + 1] = what\n"
    "end\n"
    "return out\n",
    [SC_FINISH] = LUA_LIB
    "local m = ARGV[2]..':'..ARGV[1]\n"
    "local jk = P..'job:'..m\n"
    "local h = redis.call('HMGET', jk, 'state', 'eid')\n"
    "if not h[1] or h[1] ~= '0' then return 0 end\n"
    "res_drop(m)\n"
    "redis.call('HSET', jk, 'state', ARGV[3], 'result', ARGV[4], 'node', '', 'dec', ARGV[5])\n"
    "local id = outbox_add(ARGV[1], ARGV[2], ARGV[5], tonumber(ARGV[5]) + "
    "tonumber(ARGV[6]))\n"
    "entry_drop(h[2])\n"
    "return id\n",
    [SC_DELETE] = LUA_LIB "local m = ARGV[2]..':'..ARGV[1]\n"
                          "local jk = P..'job:'..m\n"
                          "local h = redis.call('HMGET', jk, 'state', 'eid', 'cl', 'clx')\n"
                          "entry_drop(h[2])\n"
                          "outbox_drop_job(m)\n"
                          "res_drop(m)\n"
                          "redis.call('DEL', jk)\n"
                          "if h[3] then\n"
                          "  redis.call('HSET', jk, 'cl', h[3], 'clx', h[4])\n"
                          "  redis.call('PEXPIREAT', jk, h[4])\n"
                          "end\n"
                          "if h[1] then return 0 end\n"
                          "return 1\n",
    [SC_NODE_PUT] = LUA_LIB
    "local nk = P..'node:'..ARGV[1]\n"
    "local old = redis.call('HGET', nk, 'last')\n"
    "local last = ARGV[3]\n"
    "if old and tonumber(old) > tonumber(last) then last = old end\n"
    "redis.call('HSET', nk, 'doc', ARGV[2], 'last', last, 'cap_cpu', ARGV[4], 'cap_mem', ARGV[5],\n"
    "           'cap_gpu', ARGV[6])\n"
    "usage_restart(nk, ARGV[7], ARGV[8], ARGV[9], ARGV[10])\n"
    "redis.call('SADD', P..'nodes', ARGV[1])\n"
    "ev('n', 'id', ARGV[1], 'doc', ARGV[2], 'last', last, 'uc', ARGV[7], 'um', ARGV[9])\n"
    "if old then return 0 end\n"
    "return 1\n",
    /* A report that repeated the stored document: the time and the usage
     * counts as SC_NODE_PUT writes them (usage_restart); the feed event
     * goes without the document. 1 when the stored document is another
     * (another API process stored a newer one, or deleted the node): put
     * it in full. */
    [SC_NODE_TOUCH] = LUA_LIB "local nk = P..'node:'..ARGV[1]\n"
                              "local h = redis.call('HMGET', nk, 'last', 'doc')\n"
                              "if not h[1] or h[2] ~= ARGV[7] then return 1 end\n"
                              "local old = h[1]\n"
                              "local last = ARGV[2]\n"
                              "if tonumber(old) > tonumber(last) then last = old end\n"
                              "redis.call('HSET', nk, 'last', last)\n"
                              "usage_restart(nk, ARGV[3], ARGV[4], ARGV[5], ARGV[6])\n"
                              "ev('h', 'id', ARGV[1], 'last', last, 'uc', ARGV[3], 'um', ARGV[5])\n"
                              "return 0\n",
    [SC_NODE_DELETE] =
        LUA_LIB "local nk = P..'node:'..ARGV[1]\n"
                "local existed = redis.call('EXISTS', nk)\n"
                "local n = 0\n"
                "for _, m in ipairs(redis.call('SMEMBERS', P..'noderes:'..ARGV[1])) do\n"
                "  local jk = P..'job:'..m\n"
                "  local h = redis.call('HMGET', jk, 'state', 'node')\n"
                "  res_drop(m)\n"
                "  if h[1] == '1' and h[2] == ARGV[1] then\n"
                "    outbox_drop_job(m)\n"
                "    local sep = string.find(m, ':', 1, true)\n"
                "    redis.call('HINCRBY', jk, 'handed', 1)\n"
                "    local eid = queue(string.sub(m, sep + 1), string.sub(m, 1, sep - 1))\n"
                "    redis.call('HSET', jk, 'state', 0, 'node', '', 'eid', eid)\n"
                "    redis.call('HDEL', jk, 'result', 'dec')\n"
                "    n = n + 1\n"
                "  end\n"
                "end\n"
                "redis.call('DEL', nk, P..'noderes:'..ARGV[1])\n"
                "redis.call('SREM', P..'nodes', ARGV[1])\n"
                "if existed == 1 then ev('d', 'id', ARGV[1]) end\n"
                "return {existed, n}\n",
    [SC_LOAD] = LUA_LIB "local seq = redis.call('GET', P..'ev:seq') or '0'\n"
                        "local e = redis.call('XREVRANGE', P..'events', '+', '-', 'COUNT', 1)\n"
                        "local lastid = '0-0'\n"
                        "if #e > 0 then lastid = e[1][1] end\n"
                        "local ids = redis.call('SMEMBERS', P..'nodes')\n"
                        "table.sort(ids)\n"
                        "local nodes = {}\n"
                        "for _, id in ipairs(ids) do\n"
                        "  local h = redis.call('HMGET', P..'node:'..id, 'doc', 'last')\n"
                        "  if h[1] then\n"
                        "    nodes[#nodes + 1] = id\n"
                        "    nodes[#nodes + 1] = h[1]\n"
                        "    nodes[#nodes + 1] = h[2]\n"
                        "  end\n"
                        "end\n"
                        "local rs = {}\n"
                        "for _, id in ipairs(ids) do\n"
                        "  for _, m in ipairs(redis.call('SMEMBERS', P..'noderes:'..id)) do\n"
                        "    local packed = redis.call('HGET', P..'job:'..m, 'res')\n"
                        "    if packed then\n"
                        "      local sep = string.find(m, ':', 1, true)\n"
                        "      local h = {string.sub(m, sep + 1), string.sub(m, 1, sep - 1)}\n"
                        "      for w in string.gmatch(packed, '%S+') do h[#h + 1] = w end\n"
                        "      rs[#rs + 1] = h\n"
                        "    end\n"
                        "  end\n"
                        "end\n"
                        "table.sort(rs, function(a, b)\n"
                        "  local x, y = tonumber(a[7]), tonumber(b[7])\n"
                        "  if x ~= y then return x < y end\n"
                        "  if a[1] ~= b[1] then return a[1] < b[1] end\n"
                        "  return tonumber(a[2]) < tonumber(b[2])\n"
                        "end)\n"
                        "local flat = {}\n"
                        "for _, h in ipairs(rs) do\n"
                        "  for i = 1, 7 do flat[#flat + 1] = h[i] end\n"
                        "end\n"
                        "return {seq, lastid, nodes, flat}\n",
    /* An entry is its instance's member in outbox:due and the job hash's
     * out (id), oa (attempts), oc (created), on (next attempt). */
    [SC_DUE] = LUA_LIB
    "local ms = redis.call('ZRANGEBYSCORE', P..'outbox:due', '-inf', ARGV[1], 'LIMIT', 0,\n"
    "                      tonumber(ARGV[2]))\n"
    "local out = {}\n"
    "local nx = tonumber(ARGV[1]) + tonumber(ARGV[3])\n"
    "for _, m in ipairs(ms) do\n"
    "  local h = redis.call('HMGET', P..'job:'..m, 'out', 'result', 'oa', 'oc', 'on')\n"
    "  local sep = string.find(m, ':', 1, true)\n"
    "  if h[1] and h[2] and sep then\n"
    "    redis.call('ZADD', P..'outbox:due', nx, m)\n"
    "    out[#out + 1] = {h[1], string.sub(m, sep + 1), string.sub(m, 1, sep - 1), h[2], h[3] or "
    "'0',\n"
    "                     h[4] or '0', h[5] or '0'}\n"
    "  else\n"
    "    redis.call('ZREM', P..'outbox:due', m)\n"
    "  end\n"
    "end\n"
    "return out\n",
    /* Groups of three: id, job, instance. The claim goes with the entry
     * when the entry names it, and alone when the entry was dropped while
     * being sent (a newer decision, a delete). */
    [SC_DONE] = LUA_LIB "for i = 1, #ARGV, 3 do\n"
                        "  local id = ARGV[i]\n"
                        "  local m = ARGV[i + 2]..':'..ARGV[i + 1]\n"
                        "  local jk = P..'job:'..m\n"
                        "  local j = redis.call('HMGET', jk, 'out', 'cl')\n"
                        "  if j[1] == id then\n"
                        "    redis.call('ZREM', P..'outbox:due', m)\n"
                        "    if j[2] == id then\n"
                        "      redis.call('HDEL', jk, 'out', 'oa', 'oc', 'on', 'cl', 'clx')\n"
                        "    else\n"
                        "      redis.call('HDEL', jk, 'out', 'oa', 'oc', 'on')\n"
                        "    end\n"
                        "  else\n"
                        "    claim_release(jk, id, j[2])\n"
                        "  end\n"
                        "end\n"
                        "return 0\n",
    /* id, job, instance, attempts, next attempt. */
    [SC_RETRY] = LUA_LIB "local m = ARGV[3]..':'..ARGV[2]\n"
                         "local jk = P..'job:'..m\n"
                         "local j = redis.call('HMGET', jk, 'out', 'cl')\n"
                         "claim_release(jk, ARGV[1], j[2])\n"
                         "if j[1] ~= ARGV[1] then return 1 end\n"
                         "redis.call('HSET', jk, 'oa', ARGV[4], 'on', ARGV[5])\n"
                         "redis.call('ZADD', P..'outbox:due', ARGV[5], m)\n"
                         "return 0\n",
    /* The claim of an instance's delivery is its job hash's cl (the outbox
     * id being sent) until clx (Redis's clock, ms): fields of a hash the
     * placement wrote anyway, rather than two keys with a PX each. */
    [SC_CLAIM] = LUA_LIB "local t = redis.call('TIME')\n"
                         "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                         "local until_ms = now + tonumber(ARGV[1])\n"
                         "local out = {}\n"
                         "for i = 2, #ARGV, 3 do\n"
                         "  local id = ARGV[i]\n"
                         "  local jk = P..'job:'..ARGV[i + 2]..':'..ARGV[i + 1]\n"
                         "  local h = redis.call('HMGET', jk, 'out', 'cl', 'clx')\n"
                         "  if h[2] and h[2] ~= id and tonumber(h[3]) > now then\n"
                         "    out[#out + 1] = 2\n"
                         "  elseif h[1] ~= id then\n"
                         "    out[#out + 1] = 1\n"
                         "  else\n"
                         "    redis.call('HSET', jk, 'cl', id, 'clx', until_ms)\n"
                         "    out[#out + 1] = 0\n"
                         "  end\n"
                         "end\n"
                         "return out\n",
};

typedef struct slot {
    redisContext *c;
    bool busy;
} slot;

typedef struct rstore {
    store base; /* first: the generic handle points here */
    redis_addr addr;
    char consumer[128];
    long long claim_ms;
    double connect_timeout, command_timeout, lease_s;
    char sha[SC_COUNT][41];

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a slot was freed, or closing */
    slot pool[POOL_N];
    int active; /* calls in flight */
    bool closing;
    double backoff, retry_at; /* reconnect backoff after a failed connect */
    char claim_cursor[64];    /* XAUTOCLAIM scan position */
    store_job buf[BUF_CAP];   /* read, pending under this consumer, not yet taken */
    char buf_eid[BUF_CAP][RR_ENTRY_ID_MAX];
    size_t buf_head, buf_n;
    size_t buf_reserved; /* room promised to reads in flight */
    double next_claim;   /* monotonic time of the next XAUTOCLAIM */

    /* Intakes waiting to share one enqueue call (see enq_submit). */
    pthread_mutex_t emu;
    pthread_cond_t ecv;      /* a call ended */
    struct enq_req *eq_head; /* waiting, oldest first */
    struct enq_req *eq_tail;
    bool eq_busy; /* a caller is running a call for the queue */
    /* Asynchronous intakes (rs_enqueue_async) are run by their own thread,
     * started with the first of them and woken by rs_flush_async. */
    pthread_cond_t ekick;
    pthread_t eq_thread;
    bool eq_started, eq_stop, eq_unflushed;

    /* The change feed: used by the one following thread only. */
    char follow_id[64]; /* last entry applied; "" = snapshot needed */
    uint64_t follow_seq;
} rstore;

/* A borrowed connection. dead: the context failed and is dropped on return. */
typedef struct lease {
    rstore *s;
    int i;
    redisContext *c;
    bool dead;
} lease;

/* --- small helpers ----------------------------------------------------- */

/* As node_id_check: no spaces or control characters, which also keeps the
 * packed reservation event ("job inst node ...") unambiguous. */
static bool id_ok(const char *id)
{
    if (!id || !*id || strnlen(id, CS_ID_MAX + 1) > CS_ID_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Owned argv for redisCommandArgv; numbers are formatted into owned copies.
 * Slots 0..2 are reserved for EVALSHA sha 0 when the args go to a script. */
typedef struct args {
    int n, cap;
    const char **v;
    size_t *len;
    char **own;
    int nown;
    bool oom;
} args;

static void args_free(args *a)
{
    for (int i = 0; i < a->nown; i++)
        free(a->own[i]);
    free(a->own);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof *a);
}

static void args_bin(args *a, const char *p, size_t n)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        const char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *len = v ? realloc(a->len, (size_t)cap * sizeof *len) : NULL;
        if (len)
            a->len = len;
        char **own = len ? realloc(a->own, (size_t)cap * sizeof *own) : NULL;
        if (!own) {
            a->oom = true;
            return;
        }
        a->own = own;
        a->cap = cap;
    }
    a->v[a->n] = p;
    a->len[a->n] = n;
    a->n++;
}

static void args_str(args *a, const char *s)
{
    args_bin(a, s ? s : "", s ? strlen(s) : 0);
}

static void args_fmt(args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void args_fmt(args *a, const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->oom = true;
        return;
    }
    args_bin(a, p, (size_t)n);
    if (a->oom) {
        free(p);
        return;
    }
    a->own[a->nown++] = p; /* own has room: it grows with v */
}

static void args_dbl(args *a, double d)
{
    args_fmt(a, "%.17g", d);
}

static void args_script(args *a)
{
    args_str(a, "EVALSHA");
    args_str(a, "");
    args_str(a, "0");
}

/* --- connections ------------------------------------------------------- */

static struct timeval tv_of(double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    return tv;
}

static int conn_fail(cs_error *err, redisContext *c, const char *what, const char *detail)
{
    int rc = cs_fail(err, "redis", "%s: %s", what, detail && *detail ? detail : "no reply");
    if (c)
        redisFree(c);
    return rc;
}

/* One command during connection set-up; -1 with err on an error reply. */
static int setup_cmd(redisContext *c, int argc, const char **argv, const char *what, cs_error *err,
                     redisReply **keep)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, len);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", r && r->str ? r->str : c->errstr);
        freeReplyObject(r);
        if (strncmp(msg, "NOAUTH", 6) == 0)
            return conn_fail(err, c, "Redis requires a password (none in REDIS_ADDR)", msg);
        return conn_fail(err, c, what, msg);
    }
    if (keep)
        *keep = r;
    else
        freeReplyObject(r);
    return 0;
}

/* Connects, authenticates, selects the database and loads the scripts.
 * save_sha: record the script digests (only at open, before any sharing). */
static int conn_open(rstore *s, redisContext **out, bool save_sha, cs_error *err)
{
    const redis_addr *a = &s->addr;
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv_of(s->connect_timeout));
    if (!c || c->err) {
        int rc = cs_fail(err, "redis", "cannot connect to Redis at %s:%d: %s", a->host, a->port,
                         c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return rc;
    }
    if (redisSetTimeout(c, tv_of(s->command_timeout)) != REDIS_OK ||
        redisEnableKeepAlive(c) != REDIS_OK)
        return conn_fail(err, c, "cannot set Redis socket options", c->errstr);
    if (a->password[0]) {
        const char *av[3] = {"AUTH", a->user[0] ? a->user : a->password, a->password};
        if (setup_cmd(c, a->user[0] ? 3 : 2, av, "Redis authentication failed (wrong password?)",
                      err, NULL))
            return -1;
    }
    char db[16];
    snprintf(db, sizeof db, "%d", a->db);
    if (setup_cmd(c, 2, (const char *[]){"SELECT", db}, "Redis SELECT of the database failed", err,
                  NULL))
        return -1;
    for (int i = 0; i < SC_COUNT; i++) {
        redisReply *r = NULL;
        if (setup_cmd(c, 3, (const char *[]){"SCRIPT", "LOAD", SCRIPT[i]},
                      "Redis SCRIPT LOAD failed", err, &r))
            return -1;
        if (!rr_script_sha(r)) {
            freeReplyObject(r);
            return conn_fail(err, c, "Redis SCRIPT LOAD failed", "unexpected reply");
        }
        if (save_sha)
            memcpy(s->sha[i], r->str, 41);
        freeReplyObject(r);
    }
    *out = c;
    return 0;
}

/* Borrows a connection, connecting if the slot has none. -1 when closing or
 * while Redis is unreachable (a failed connect backs off 50 ms .. 2 s). */
static int lease_get(rstore *s, lease *l)
{
    memset(l, 0, sizeof *l);
    l->s = s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->closing) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        int free_i = -1;
        for (int i = 0; i < POOL_N; i++) {
            if (!s->pool[i].busy && (free_i < 0 || s->pool[i].c))
                free_i = i; /* prefer a slot already connected */
        }
        if (free_i >= 0) {
            l->i = free_i;
            break;
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
    slot *sl = &s->pool[l->i];
    sl->busy = true;
    s->active++;
    l->c = sl->c;
    bool may_connect = !l->c && store_mono() >= s->retry_at;
    pthread_mutex_unlock(&s->mu);
    if (l->c)
        return 0;
    if (may_connect && conn_open(s, &l->c, false, NULL) == 0) {
        pthread_mutex_lock(&s->mu);
        s->backoff = 0;
        s->pool[l->i].c = l->c;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    if (may_connect) {
        s->backoff = s->backoff ? s->backoff * 2 : BACKOFF_MIN_S;
        if (s->backoff > BACKOFF_MAX_S)
            s->backoff = BACKOFF_MAX_S;
        s->retry_at = store_mono() + s->backoff;
    }
    s->pool[l->i].busy = false;
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return -1;
}

static void lease_put(lease *l)
{
    rstore *s = l->s;
    if (l->dead && l->c) {
        redisFree(l->c);
        l->c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->pool[l->i].c = l->c;
    s->pool[l->i].busy = false;
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* One command on a lease. NULL when the connection died (the lease is
 * marked dead: the next call reconnects). */
static redisReply *lcmd(lease *l, args *a)
{
    if (l->dead || a->oom)
        return NULL;
    redisReply *r = redisCommandArgv(l->c, a->n, a->v, a->len);
    if (!r || l->c->err) {
        freeReplyObject(r);
        l->dead = true;
        return NULL;
    }
    return r;
}

/* Runs script sc with a's arguments (a starts with args_script), by digest,
 * falling back to the source when Redis lost its script cache. */
static redisReply *lscript(lease *l, int sc, args *a)
{
    if (a->oom || a->n < 3)
        return NULL;
    a->v[0] = "EVALSHA";
    a->len[0] = 7;
    a->v[1] = l->s->sha[sc];
    a->len[1] = 40;
    redisReply *r = lcmd(l, a);
    if (rr_is_error(r, "NOSCRIPT")) {
        freeReplyObject(r);
        a->v[0] = "EVAL";
        a->len[0] = 4;
        a->v[1] = SCRIPT[sc];
        a->len[1] = strlen(SCRIPT[sc]);
        r = lcmd(l, a);
    }
    return r;
}

/* Runs one command on a borrowed connection. */
static redisReply *call(rstore *s, int sc, args *a)
{
    lease l;
    if (lease_get(s, &l) != 0)
        return NULL;
    redisReply *r = sc >= 0 ? lscript(&l, sc, a) : lcmd(&l, a);
    lease_put(&l);
    return r;
}

/* Script or command whose reply is an integer; -1 on any error. */
static long long call_int(rstore *s, int sc, args *a)
{
    redisReply *r = call(s, sc, a);
    long long v = rr_integer(r, -1);
    freeReplyObject(r);
    args_free(a);
    return v;
}

static int create_group(lease *l)
{
    args a = {0};
    args_str(&a, "XGROUP");
    args_str(&a, "CREATE");
    args_str(&a, K_STREAM);
    args_str(&a, K_GROUP);
    args_str(&a, "0");
    args_str(&a, "MKSTREAM");
    redisReply *r = lcmd(l, &a);
    int rc = r && (r->type == REDIS_REPLY_STATUS || rr_is_error(r, "BUSYGROUP")) ? 0 : -1;
    freeReplyObject(r);
    args_free(&a);
    return rc;
}

/* Reservations were hashes of their own (cs:res:<inst>:<job>) before
 * layout 2, which keeps each in its job hash's `res` field. Done once per
 * database, at open, in SCAN batches (each a short script; moving a key
 * twice is harmless), so a store written by an older version keeps its
 * reservations without blocking Redis for long. A reservation whose job is
 * gone is released as res_drop would. cs:res:all, a set before session 8,
 * is not read since and goes too. (Processes of both versions must not
 * share one Redis, and going back to an older version is not supported.) */
static const char MIGRATE_LUA[] =
    "for _, rk in ipairs(ARGV) do\n"
    "  local r = redis.call('HMGET', rk, 'job', 'inst', 'node', 'cpu', 'mem', 'gpu', 'at', "
    "'cseq',\n"
    "                       'mseq')\n"
    "  if r[1] and r[2] and r[3] then\n"
    "    local m = r[2]..':'..r[1]\n"
    "    local jk = 'cs:job:'..m\n"
    "    if redis.call('HEXISTS', jk, 'state') == 1 then\n"
    "      redis.call('HSET', jk, 'res', table.concat({r[3], r[4] or '0', r[5] or '0', r[6] or "
    "'0',\n"
    "                 r[7] or '0', r[8] or '0', r[9] or '0'}, ' '))\n"
    "    else\n"
    "      local nk = 'cs:node:'..r[3]\n"
    "      if redis.call('EXISTS', nk) == 1 then\n"
    "        local cpu, mem = tonumber(r[4] or '0'), tonumber(r[5] or '0')\n"
    "        redis.call('HINCRBY', nk, 'res_cpu', 0 - cpu)\n"
    "        redis.call('HINCRBY', nk, 'res_mem', 0 - mem)\n"
    "        redis.call('HINCRBY', nk, 'res_gpu', 0 - tonumber(r[6] or '0'))\n"
    "        local s = redis.call('HMGET', nk, 'cpu_seq', 'mem_seq')\n"
    "        if (r[8] or '0') == (s[1] or '0') then redis.call('HINCRBY', nk, 'after_cpu', 0 - "
    "cpu) end\n"
    "        if (r[9] or '0') == (s[2] or '0') then redis.call('HINCRBY', nk, 'after_mem', 0 - "
    "mem) end\n"
    "      end\n"
    "      redis.call('SREM', 'cs:noderes:'..r[3], m)\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', rk)\n"
    "end\n"
    "return 0\n";

/* Layout 3 keeps a result's outbox entry in its job hash (out, oa, oc,
 * on) with the instance as its outbox:due member; before, each entry was
 * a hash outbox:<id> and the member its id. Members with a ':' are moved
 * already. An entry that is no longer its instance's current one goes. */
static const char MIGRATE_OUTBOX_LUA[] =
    "for _, id in ipairs(ARGV) do\n"
    "  if not string.find(id, ':', 1, true) then\n"
    "    local ok = 'cs:outbox:'..id\n"
    "    local h = redis.call('HMGET', ok, 'job', 'inst', 'attempts', 'created', 'next', "
    "'dropped')\n"
    "    redis.call('ZREM', 'cs:outbox:due', id)\n"
    "    if h[1] and h[2] and not h[6] then\n"
    "      local m = h[2]..':'..h[1]\n"
    "      local jk = 'cs:job:'..m\n"
    "      if redis.call('HGET', jk, 'out') == id then\n"
    "        redis.call('HSET', jk, 'oa', h[3] or '0', 'oc', h[4] or '0', 'on', h[5] or '0')\n"
    "        redis.call('ZADD', 'cs:outbox:due', h[5] or '0', m)\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', ok)\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* Runs lua on every key SCAN finds under pattern (or, with zkey, on every
 * member of that sorted set, ZSCAN), a batch of about 1,000 per call. */
static int scan_apply(lease *l, const char *pattern, const char *zkey, const char *lua)
{
    char cursor[64] = "0";
    int rc = 0;
    args a = {0};
    while (rc == 0) {
        if (zkey) {
            args_str(&a, "ZSCAN");
            args_str(&a, zkey);
            args_str(&a, cursor);
        } else {
            args_str(&a, "SCAN");
            args_str(&a, cursor);
            args_str(&a, "MATCH");
            args_str(&a, pattern);
            args_str(&a, "TYPE");
            args_str(&a, "hash");
        }
        args_str(&a, "COUNT");
        args_str(&a, "1000");
        redisReply *r = lcmd(l, &a);
        args_free(&a);
        const char *next = NULL;
        const redisReply *keys = NULL;
        if (!rr_scan(r, &next, &keys) || strlen(next) >= sizeof cursor) {
            rc = -1;
        } else if (keys->elements > 0) {
            args_str(&a, "EVAL");
            args_str(&a, lua);
            args_str(&a, "0");
            /* ZSCAN answers member, score, member, score... */
            for (size_t i = 0; i < keys->elements; i += zkey ? 2 : 1)
                args_str(&a, keys->element[i]->str);
            redisReply *e = lcmd(l, &a);
            args_free(&a);
            rc = rr_integer(e, -1) == 0 ? 0 : -1;
            freeReplyObject(e);
        }
        if (rc == 0)
            snprintf(cursor, sizeof cursor, "%s", next);
        freeReplyObject(r);
        if (rc == 0 && strcmp(cursor, "0") == 0)
            break;
    }
    return rc;
}

/* Brings a database written by an older version to layout 3, once. */
static int migrate(lease *l)
{
    args a = {0};
    args_str(&a, "GET");
    args_str(&a, "cs:layout");
    redisReply *r = lcmd(l, &a);
    args_free(&a);
    int layout = r && r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
    int rc = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL) ? 0 : -1;
    freeReplyObject(r);
    if (rc != 0 || layout >= 3)
        return rc;
    if (layout < 2) {
        args_str(&a, "DEL");
        args_str(&a, "cs:res:all");
        r = lcmd(l, &a);
        args_free(&a);
        rc = rr_integer(r, -1) < 0 ? -1 : 0;
        freeReplyObject(r);
        if (rc == 0)
            rc = scan_apply(l, "cs:res:*", NULL, MIGRATE_LUA);
    }
    if (rc == 0)
        rc = scan_apply(l, NULL, "cs:outbox:due", MIGRATE_OUTBOX_LUA);
    if (rc != 0)
        return rc;
    args_str(&a, "SET");
    args_str(&a, "cs:layout");
    args_str(&a, "3");
    r = lcmd(l, &a);
    args_free(&a);
    rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

/* --- address ----------------------------------------------------------- */

int redis_addr_parse(const char *text, const char *field, redis_addr *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p = text ? text : "";
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return cs_fail(err, field, "unsupported scheme in '%.100s' (want redis://)", p);
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t ul = colon ? (size_t)(colon - p) : 0, pl = (size_t)(at - pw);
        if (ul >= sizeof out->user || pl >= sizeof out->password)
            return cs_fail(err, field, "user or password too long");
        memcpy(out->user, p, ul);
        memcpy(out->password, pw, pl);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *pc = memchr(p, ':', hl);
    size_t nl = pc ? (size_t)(pc - p) : hl;
    if (nl == 0 || nl >= sizeof out->host)
        return cs_fail(err, field, "missing or too long host in '%.100s'", text);
    memcpy(out->host, p, nl);
    if (pc) {
        char *end;
        errno = 0;
        long port = strtol(pc + 1, &end, 10);
        if (errno || end != p + hl || end == pc + 1 || port < 1 || port > 65535)
            return cs_fail(err, field, "bad port in '%.100s' (want 1..65535)", text);
        out->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        errno = 0;
        long db = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || db < 0 || db > 100000)
            return cs_fail(err, field, "bad database number in '%.100s'", text);
        out->db = (int)db;
    }
    return 0;
}

/* --- open and close ---------------------------------------------------- */

/* Entries read but never taken go back to the group: marked idle for
 * longer than the claim time, so another worker claims them at once
 * instead of after CLAIM_IDLE. */
static void hand_back(rstore *s)
{
    redisContext *c = NULL;
    for (int i = 0; i < POOL_N && !c; i++)
        c = s->pool[i].c;
    if (c && s->buf_n > 0) {
        args a = {0};
        args_str(&a, "XCLAIM");
        args_str(&a, K_STREAM);
        args_str(&a, K_GROUP);
        args_str(&a, s->consumer);
        args_str(&a, "0");
        for (size_t i = 0; i < s->buf_n; i++)
            args_str(&a, s->buf_eid[(s->buf_head + i) % BUF_CAP]);
        args_str(&a, "IDLE");
        args_fmt(&a, "%lld", s->claim_ms + 1000);
        args_str(&a, "JUSTID");
        if (!a.oom)
            freeReplyObject(redisCommandArgv(c, a.n, a.v, a.len));
        args_free(&a);
    }
    for (size_t i = 0; i < s->buf_n; i++)
        store_job_clear(&s->buf[(s->buf_head + i) % BUF_CAP]);
    s->buf_n = 0;
}

static void enq_stop(rstore *s);

static void rs_close(store *base)
{
    rstore *s = (rstore *)base;
    if (!s)
        return;
    enq_stop(s); /* its last calls need the connections */
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    while (s->active > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    hand_back(s);
    for (int i = 0; i < POOL_N; i++)
        if (s->pool[i].c)
            redisFree(s->pool[i].c);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->ecv);
    pthread_cond_destroy(&s->ekick);
    pthread_mutex_destroy(&s->emu);
    free(s);
}

static const store_ops REDIS_OPS;

store *store_redis_open(const store_redis_opts *o, cs_error *err)
{
    if (!o || !o->consumer || !*o->consumer || strlen(o->consumer) >= 128) {
        cs_fail(err, "redis", "consumer name empty or too long");
        return NULL;
    }
    rstore *s = calloc(1, sizeof *s);
    if (!s) {
        cs_fail(err, "redis", "out of memory");
        return NULL;
    }
    s->base.ops = &REDIS_OPS;
    if (redis_addr_parse(o->addr, "REDIS_ADDR", &s->addr, err) != 0) {
        free(s);
        return NULL;
    }
    snprintf(s->consumer, sizeof s->consumer, "%s", o->consumer);
    s->claim_ms = (long long)(o->claim_idle_s * 1000.0);
    s->connect_timeout = o->connect_timeout_s > 0 ? o->connect_timeout_s : 2.0;
    /* A blocking read waits BLOCK_CHUNK_MS on the server: allow for it. */
    s->command_timeout = (o->command_timeout_s > 0 ? o->command_timeout_s : 5.0);
    s->lease_s = o->result_lease_s > 0 ? o->result_lease_s : 10.0;
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
    if (conn_open(s, &s->pool[0].c, true, err) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->emu, NULL);
    pthread_cond_init(&s->ecv, NULL);
    pthread_cond_init(&s->ekick, NULL);
    lease l = {.s = s, .i = 0, .c = s->pool[0].c};
    s->pool[0].busy = true;
    s->active = 1;
    int rc = create_group(&l);
    int mrc = rc == 0 ? migrate(&l) : 0;
    lease_put(&l);
    if (rc != 0) {
        cs_fail(err, "redis", "cannot create the consumer group on %s", K_STREAM);
        rs_close(&s->base);
        return NULL;
    }
    if (mrc != 0) {
        cs_fail(err, "redis",
                "cannot bring an older version's store to layout 3 (reservations and outbox "
                "entries into the job hashes); Redis failed or went away");
        rs_close(&s->base);
        return NULL;
    }
    return &s->base;
}

/* --- intake ------------------------------------------------------------ */

/* One intake's instances first..first+n-1 of a job, waiting in
 * rstore's queue; lives on its caller's stack until done. */
typedef struct enq_req {
    const char *job_id, *body;
    double now;
    uint32_t first, n;
    int *rcs; /* n answers */
    int rc;
    bool done;
    /* Asynchronous (done_fn set): malloc'ed, one instance, answered
     * through done_fn and freed by whoever ran its call. */
    store_done_fn done_fn;
    void *done_ud;
    int rc1;
    struct enq_req *next;
} enq_req;

/* A call carries at most this many intakes, or instances. */
#define ENQ_BATCH 64
#define ENQ_INSTANCES 1024

/* Runs one script call for the chain from r and fills every answer. */
static void enq_run(rstore *s, enq_req *r)
{
    args a = {0};
    args_script(&a);
    uint32_t total = 0;
    for (enq_req *q = r; q; q = q->next) {
        args_str(&a, q->job_id);
        args_str(&a, q->body);
        args_dbl(&a, q->now);
        args_fmt(&a, "%" PRIu32, q->first);
        args_fmt(&a, "%" PRIu32, q->n);
        total += q->n;
    }
    int *all = calloc(total, sizeof *all);
    redisReply *rep = all ? call(s, SC_ENQUEUE, &a) : NULL;
    if (all)
        rr_enqueue_rcs(rep, total, all);
    freeReplyObject(rep);
    args_free(&a);
    uint32_t off = 0;
    for (enq_req *q = r; q; q = q->next) {
        q->rc = 0;
        for (uint32_t i = 0; i < q->n; i++) {
            q->rcs[i] = all ? all[off + i] : -1;
            if (q->rcs[i] < 0)
                q->rc = -1;
        }
        off += q->n;
    }
    free(all);
}

/* Group commit for intakes: the first caller to find no call running
 * takes every waiting intake (up to ENQ_BATCH) into one script call;
 * the others sleep until theirs has run. A round trip and a script call
 * cost Redis more than the few commands of one instance. */
/* Runs the next batch of the queue. Called with emu held, the queue not
 * empty and no call running; returns with emu held. */
static void enq_next(rstore *s)
{
    s->eq_busy = true;
    enq_req *batch = s->eq_head, *last = batch;
    size_t k = 1;
    uint32_t inst = batch->n;
    while (last->next && k < ENQ_BATCH && inst + last->next->n <= ENQ_INSTANCES) {
        last = last->next;
        inst += last->n;
        k++;
    }
    s->eq_head = last->next;
    if (!s->eq_head)
        s->eq_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&s->emu);
    enq_run(s, batch);
    /* Asynchronous intakes are answered outside emu, then freed. */
    enq_req **link = &batch;
    while (*link) {
        enq_req *q = *link;
        if (!q->done_fn) {
            link = &q->next;
            continue;
        }
        *link = q->next;
        q->done_fn(q->done_ud, q->rc1);
        free(q);
    }
    pthread_mutex_lock(&s->emu);
    for (enq_req *q = batch, *next; q; q = next) {
        next = q->next; /* q belongs to its caller once done is seen */
        q->done = true;
    }
    s->eq_busy = false;
    pthread_cond_broadcast(&s->ecv);
    if (s->eq_head && s->eq_started)
        pthread_cond_signal(&s->ekick);
}

static int enq_submit(rstore *s, enq_req *r)
{
    pthread_mutex_lock(&s->emu);
    if (s->eq_tail)
        s->eq_tail->next = r;
    else
        s->eq_head = r;
    s->eq_tail = r;
    while (!r->done) {
        if (s->eq_busy)
            pthread_cond_wait(&s->ecv, &s->emu);
        else
            enq_next(s);
    }
    pthread_mutex_unlock(&s->emu);
    return r->rc;
}

/* The thread of asynchronous intakes: runs the queue whenever a flush
 * (or the end of another call) finds it waiting; drains it to stop. */
static void *enq_main(void *arg)
{
    rstore *s = arg;
    pthread_setname_np(pthread_self(), "store-enqueue");
    pthread_mutex_lock(&s->emu);
    for (;;) {
        if (s->eq_head && !s->eq_busy)
            enq_next(s);
        else if (s->eq_stop && !s->eq_head)
            break;
        else
            pthread_cond_wait(&s->ekick, &s->emu);
    }
    pthread_mutex_unlock(&s->emu);
    return NULL;
}

static void enq_stop(rstore *s)
{
    pthread_mutex_lock(&s->emu);
    s->eq_stop = true;
    bool started = s->eq_started;
    pthread_cond_signal(&s->ekick);
    pthread_mutex_unlock(&s->emu);
    if (started)
        pthread_join(s->eq_thread, NULL);
}

/* Queued for the intake thread, which rs_flush_async wakes once for a
 * round of intakes: they share one script call. */
static int rs_enqueue_async(store *base, const char *job_id, uint32_t instance, const char *body,
                            double now, store_done_fn done, void *ud)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now))
        return -1;
    enq_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    *r = (enq_req){.job_id = job_id,
                   .body = body,
                   .now = now,
                   .first = instance,
                   .n = 1,
                   .rc1 = -1,
                   .done_fn = done,
                   .done_ud = ud};
    r->rcs = &r->rc1;
    pthread_mutex_lock(&s->emu);
    if (s->eq_stop) {
        pthread_mutex_unlock(&s->emu);
        free(r);
        return -1;
    }
    if (!s->eq_started) {
        if (pthread_create(&s->eq_thread, NULL, enq_main, s) != 0) {
            pthread_mutex_unlock(&s->emu);
            free(r);
            return -1;
        }
        s->eq_started = true;
    }
    if (s->eq_tail)
        s->eq_tail->next = r;
    else
        s->eq_head = r;
    s->eq_tail = r;
    s->eq_unflushed = true;
    pthread_mutex_unlock(&s->emu);
    return 0;
}

static void rs_flush_async(store *base)
{
    rstore *s = (rstore *)base;
    pthread_mutex_lock(&s->emu);
    if (s->eq_unflushed && s->eq_head && !s->eq_busy)
        pthread_cond_signal(&s->ekick);
    s->eq_unflushed = false;
    pthread_mutex_unlock(&s->emu);
}

static int rs_enqueue_many(store *base, const char *job_id, uint32_t n, const char *body,
                           double now, int *rcs)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now) || n == 0 || !rcs)
        return -1;
    enq_req r = {.job_id = job_id, .body = body, .now = now, .first = 0, .n = n, .rcs = rcs};
    return enq_submit(s, &r);
}

static int rs_enqueue(store *base, const char *job_id, uint32_t instance, const char *body,
                      double now)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now))
        return -1;
    int rc = -1;
    enq_req r = {.job_id = job_id, .body = body, .now = now, .first = instance, .n = 1, .rcs = &rc};
    enq_submit(s, &r);
    return rc;
}

static int rs_requeue(store *base, const char *job_id, uint32_t instance, const char *on_node,
                      double now)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id) || !isfinite(now) || (on_node && !id_ok(on_node)))
        return -1;
    args a = {0};
    args_script(&a);
    args_str(&a, job_id);
    args_fmt(&a, "%" PRIu32, instance);
    args_str(&a, on_node ? on_node : "");
    return (int)call_int(s, SC_REQUEUE, &a);
}

/* Keeps the entries of one read beyond the first for the next takes. */
static void buf_push(rstore *s, store_job *j, const char *eid)
{
    if (s->buf_n == BUF_CAP) {
        store_job_clear(j);
        return; /* cannot happen: every read reserved its room */
    }
    size_t at = (s->buf_head + s->buf_n) % BUF_CAP;
    s->buf[at] = *j;
    snprintf(s->buf_eid[at], RR_ENTRY_ID_MAX, "%s", eid);
    s->buf_n++;
}

static bool buf_pop(rstore *s, store_job *out)
{
    pthread_mutex_lock(&s->mu);
    bool got = s->buf_n > 0;
    if (got) {
        *out = s->buf[s->buf_head];
        s->buf_head = (s->buf_head + 1) % BUF_CAP;
        s->buf_n--;
    }
    pthread_mutex_unlock(&s->mu);
    return got;
}

/* One round of take on lease l: claim an entry a dead consumer left idle
 * (at most every half claim time), else read new ones (up to TAKE_BATCH;
 * the rest wait in buf for this process's next takes) blocking up to
 * block_ms. The entries stay pending in the group until a script decides
 * them. 0 got, 1 none, -1 error. */
static int take_round(rstore *s, lease *l, store_job *out, long long block_ms)
{
    char cursor[64];
    bool claim = false;
    args a = {0};
    redisReply *r = NULL;
    pthread_mutex_lock(&s->mu);
    double now = store_mono();
    if (now >= s->next_claim) {
        claim = true;
        s->next_claim = now + (double)s->claim_ms / 2000.0;
        snprintf(cursor, sizeof cursor, "%s", s->claim_cursor);
    }
    pthread_mutex_unlock(&s->mu);
    if (claim) {
        args_str(&a, "XAUTOCLAIM");
        args_str(&a, K_STREAM);
        args_str(&a, K_GROUP);
        args_str(&a, s->consumer);
        args_fmt(&a, "%lld", s->claim_ms);
        args_str(&a, cursor);
        args_str(&a, "COUNT");
        args_str(&a, "1");
        r = lcmd(l, &a);
        args_free(&a);
        if (rr_is_error(r, "NOGROUP")) {
            freeReplyObject(r);
            return create_group(l) == 0 ? 1 : -1;
        }
        const char *next;
        const redisReply *entries;
        if (!rr_autoclaim(r, &next, &entries)) {
            freeReplyObject(r);
            return -1;
        }
        pthread_mutex_lock(&s->mu);
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", next);
        /* More may be idle: look again soon rather than in half a claim time. */
        if (strcmp(next, "0-0") != 0)
            s->next_claim = 0;
        pthread_mutex_unlock(&s->mu);
        bool got = entries->elements > 0 && rr_entry_job(entries->element[0], out, NULL);
        freeReplyObject(r);
        if (got) {
            out->attempts++; /* it was handed out before, to a consumer that went quiet */
            return 0;
        }
    }
    /* The first entry goes to the caller, the others into buf. */
    pthread_mutex_lock(&s->mu);
    size_t room = BUF_CAP - s->buf_n - s->buf_reserved;
    size_t extra = room < TAKE_BATCH - 1 ? room : TAKE_BATCH - 1;
    s->buf_reserved += extra;
    pthread_mutex_unlock(&s->mu);
    args_str(&a, "XREADGROUP");
    args_str(&a, "GROUP");
    args_str(&a, K_GROUP);
    args_str(&a, s->consumer);
    args_str(&a, "COUNT");
    args_fmt(&a, "%zu", extra + 1);
    if (block_ms > 0) {
        args_str(&a, "BLOCK");
        args_fmt(&a, "%lld", block_ms);
    }
    args_str(&a, "STREAMS");
    args_str(&a, K_STREAM);
    args_str(&a, ">");
    r = lcmd(l, &a);
    args_free(&a);
    int rc = 1;
    const redisReply *list = NULL;
    if (rr_is_error(r, "NOGROUP"))
        rc = create_group(l) == 0 ? 1 : -1;
    else if (!r || (r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_ARRAY))
        rc = -1;
    else
        list = rr_stream_entries(r);
    /* The room is given back in the same hold of the mutex that fills
     * it, so no other read can count it as free in between. */
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; list && i < list->elements; i++) {
        store_job j;
        char eid[RR_ENTRY_ID_MAX];
        if (!rr_entry_job(list->element[i], &j, eid))
            continue;
        if (rc == 1) {
            *out = j;
            rc = 0;
        } else {
            buf_push(s, &j, eid);
        }
    }
    s->buf_reserved -= extra;
    pthread_mutex_unlock(&s->mu);
    freeReplyObject(r);
    return rc;
}

static bool is_closing(rstore *s)
{
    pthread_mutex_lock(&s->mu);
    bool closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    return closing;
}

static int rs_take(store *base, store_job *out, int timeout_ms)
{
    rstore *s = (rstore *)base;
    if (!s || !out)
        return -1;
    double deadline = store_mono() + (timeout_ms > 0 ? timeout_ms / 1000.0 : 0);
    for (;;) {
        double left = deadline - store_mono();
        long long block = left > 0 ? (long long)(left * 1000.0) : 0;
        if (block > BLOCK_CHUNK_MS)
            block = BLOCK_CHUNK_MS;
        if (buf_pop(s, out))
            return 0;
        lease l;
        int rc = 1;
        if (lease_get(s, &l) == 0) {
            rc = take_round(s, &l, out, block);
            lease_put(&l);
        } else if (is_closing(s)) {
            return -1;
        } else {
            rc = 3; /* Redis unreachable: wait and try again */
        }
        if (rc == 0)
            return 0;
        if (is_closing(s))
            return -1;
        if (rc == -1 || rc == 3) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (store_mono() >= deadline)
            return 1;
    }
}

static int rs_take_more(store *base, store_job *out)
{
    rstore *s = (rstore *)base;
    if (!s || !out)
        return -1;
    return buf_pop(s, out) ? 0 : 1;
}

static size_t rs_queue_depth(store *base)
{
    rstore *s = (rstore *)base;
    lease l;
    if (!s || lease_get(s, &l) != 0)
        return 0;
    args a = {0};
    args_str(&a, "XLEN");
    args_str(&a, K_STREAM);
    redisReply *r = lcmd(&l, &a);
    args_free(&a);
    long long len = rr_integer(r, 0);
    freeReplyObject(r);
    args_str(&a, "XPENDING");
    args_str(&a, K_STREAM);
    args_str(&a, K_GROUP);
    r = lcmd(&l, &a);
    args_free(&a);
    long long pending = rr_pending_count(r);
    freeReplyObject(r);
    lease_put(&l);
    return len > pending ? (size_t)(len - pending) : 0;
}

/* --- outcomes ---------------------------------------------------------- */

static int64_t rs_finish(store *base, const char *job_id, uint32_t instance, job_state state,
                         const reservation_view *res, const char *result, double now)
{
    rstore *s = (rstore *)base;
    /* Placements go through rs_place_many, which checks capacity. */
    if (!s || !id_ok(job_id) || !result || !isfinite(now) || res)
        return -1;
    if (state != JOB_UNSCHEDULABLE)
        return -1;
    args a = {0};
    args_script(&a);
    args_str(&a, job_id);
    args_fmt(&a, "%" PRIu32, instance);
    args_fmt(&a, "%d", (int)state);
    args_str(&a, result);
    args_dbl(&a, now);
    args_dbl(&a, s->lease_s);
    return (int64_t)call_int(s, SC_FINISH, &a);
}

/* Every valid request goes into one script call; an invalid one keeps
 * rc -1 (store_place_many set it) and is not sent. */
static int rs_place_many(store *base, store_place_req *reqs, size_t n)
{
    rstore *s = (rstore *)base;
    if (!s)
        return -1;
    size_t *sent = calloc(n, sizeof *sent);
    if (!sent)
        return -1;
    size_t k = 0;
    args a = {0};
    args_script(&a);
    for (size_t i = 0; i < n; i++) {
        const store_place_req *q = &reqs[i];
        const reservation_view *res = q->res;
        if (!id_ok(q->job_id) || !res || !id_ok(res->node_id) || !q->result || !isfinite(q->now))
            continue;
        args_str(&a, q->job_id);
        args_fmt(&a, "%" PRIu32, q->instance);
        args_str(&a, res->node_id);
        args_fmt(&a, "%" PRId64, res->cpu_milli);
        args_fmt(&a, "%" PRId64, res->memory_mb);
        args_fmt(&a, "%" PRId32, res->gpus);
        args_dbl(&a, res->at);
        args_dbl(&a, q->now);
        args_dbl(&a, q->ttl);
        args_str(&a, q->result);
        args_dbl(&a, s->lease_s);
        sent[k++] = i;
    }
    redisReply *r = k ? call(s, SC_PLACE, &a) : NULL;
    args_free(&a);
    for (size_t j = 0; j < k; j++) {
        store_place_req *q = &reqs[sent[j]];
        q->rc = rr_place(r, j, &q->outbox_id, q->held_node);
    }
    int rc = k && !r ? -1 : 0;
    freeReplyObject(r);
    free(sent);
    return rc;
}

static int rs_status_get(store *base, const char *job_id, uint32_t instance, store_status *out)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id) || !out)
        return -1;
    args a = {0};
    args_str(&a, "HMGET");
    args_fmt(&a, "cs:job:%" PRIu32 ":%s", instance, job_id);
    args_str(&a, "state");
    args_str(&a, "node");
    args_str(&a, "body");
    args_str(&a, "result");
    args_str(&a, "recv");
    args_str(&a, "dec");
    redisReply *r = call(s, -1, &a);
    args_free(&a);
    int rc = rr_status(r, out);
    freeReplyObject(r);
    return rc;
}

static int rs_job_delete(store *base, const char *job_id, uint32_t instance)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(job_id))
        return -1;
    args a = {0};
    args_script(&a);
    args_str(&a, job_id);
    args_fmt(&a, "%" PRIu32, instance);
    return (int)call_int(s, SC_DELETE, &a);
}

/* --- nodes ------------------------------------------------------------- */

static int rs_node_put(store *base, const char *node_id, const char *doc, double last_report,
                       const store_node_caps *caps)
{
    rstore *s = (rstore *)base;
    if (!s || !id_ok(node_id) || !doc || !isfinite(last_report) || !caps)
        return -1;
    args a = {0};
    if (caps->doc_unchanged) {
        args_script(&a);
        args_str(&a, node_id);
        args_dbl(&a, last_report);
        args_str(&a, caps->cpu_pct_set ? "1" : "0");
        args_dbl(&a, caps->cpu_pct);
        args_str(&a, caps->mem_pct_set ? "1" : "0");
        args_dbl(&a, caps->mem_pct);
        args_str(&a, doc);
        long long rc = call_int(s, SC_NODE_TOUCH, &a);
        if (rc != 1)
            return rc < 0 ? -1 : 0;
    }
    args_script(&a);
    args_str(&a, node_id);
    args_str(&a, doc);
    args_dbl(&a, last_report);
    args_fmt(&a, "%" PRId64, caps->cpu_milli);
    args_fmt(&a, "%" PRId64, caps->memory_mb);
    args_fmt(&a, "%" PRId32, caps->gpus);
    args_str(&a, caps->cpu_pct_set ? "1" : "0");
    args_dbl(&a, caps->cpu_pct);
    args_str(&a, caps->mem_pct_set ? "1" : "0");
    args_dbl(&a, caps->mem_pct);
    long long rc = call_int(s, SC_NODE_PUT, &a);
    return rc < 0 ? -1 : 0;
}

static int rs_node_delete(store *base, const char *node_id, size_t *requeued)
{
    rstore *s = (rstore *)base;
    if (requeued)
        *requeued = 0;
    if (!s || !id_ok(node_id))
        return -1;
    args a = {0};
    args_script(&a);
    args_str(&a, node_id);
    redisReply *r = call(s, SC_NODE_DELETE, &a);
    args_free(&a);
    int rc = rr_node_delete(r, requeued);
    freeReplyObject(r);
    return rc;
}

/* The snapshot script: {seq, last feed id, nodes (id, doc, last)...,
 * reservations (job, inst, node, cpu, mem, gpu, at)...}. The callbacks run
 * after the connection went back to the pool. */
static redisReply *snapshot(rstore *s)
{
    args a = {0};
    args_script(&a);
    redisReply *r = call(s, SC_LOAD, &a);
    args_free(&a);
    if (!rr_snapshot_valid(r)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int rs_load(store *base, const store_loader *l)
{
    rstore *s = (rstore *)base;
    if (!s || !l)
        return -1;
    redisReply *r = snapshot(s);
    if (!r)
        return -1;
    int rc = rr_snapshot_replay(r, l);
    freeReplyObject(r);
    return rc;
}

/* --- the change feed --------------------------------------------------- */

/* A snapshot's usage figures count as just reported: the follower then
 * counts every reservation as made since, which errs on the safe side. */
static int follow_snapshot_node(void *ud, const char *node_id, const char *doc, double last_report)
{
    const store_follower *fo = ud;
    return fo->node ? fo->node(fo->ud, node_id, doc, last_report, true, true) : 0;
}

static int follow_snapshot_reservation(void *ud, const reservation_view *r)
{
    const store_follower *fo = ud;
    if (fo->reservation)
        fo->reservation(fo->ud, r);
    return 0;
}

static int follow_reload(rstore *s, const store_follower *fo)
{
    redisReply *r = snapshot(s);
    if (!r)
        return -1;
    if (fo->reload)
        fo->reload(fo->ud);
    store_loader l = {follow_snapshot_node, follow_snapshot_reservation, (void *)fo};
    rr_snapshot_replay(r, &l);
    if (fo->reloaded)
        fo->reloaded(fo->ud);
    const char *feed_id;
    size_t nodes;
    rr_snapshot_position(r, &s->follow_seq, &feed_id, &nodes);
    snprintf(s->follow_id, sizeof s->follow_id, "%s", feed_id);
    freeReplyObject(r);
    return (int)nodes;
}

/* An idle feed may hide a reset (Redis came back empty and counts again
 * from 1, with entry ids not past ours yet): the counter tells. */
static bool reset_behind(rstore *s)
{
    args a = {0};
    args_str(&a, "GET");
    args_str(&a, "cs:ev:seq");
    redisReply *r = call(s, -1, &a);
    args_free(&a);
    bool behind = rr_seq_behind(r, s->follow_seq);
    freeReplyObject(r);
    return behind;
}

static int rs_follow(store *base, const store_follower *fo, int timeout_ms, uint64_t *seq)
{
    rstore *s = (rstore *)base;
    if (!s || !fo)
        return -1;
    if (!s->follow_id[0]) {
        int n = follow_reload(s, fo);
        if (seq)
            *seq = s->follow_seq;
        return n;
    }
    args a = {0};
    args_str(&a, "XREAD");
    args_str(&a, "COUNT");
    args_fmt(&a, "%d", FOLLOW_BATCH);
    if (timeout_ms > 0) {
        args_str(&a, "BLOCK");
        args_fmt(&a, "%d", timeout_ms);
    }
    args_str(&a, "STREAMS");
    args_str(&a, K_EVENTS);
    args_str(&a, s->follow_id);
    redisReply *r = call(s, -1, &a);
    args_free(&a);
    if (!r || (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL)) {
        /* Redis may come back without what it had (no persistence, a
         * failover to a stale replica): start again from a snapshot. */
        s->follow_id[0] = '\0';
        freeReplyObject(r);
        return -1;
    }
    int n = 0;
    /* One stream was asked for: a reply naming more is not understood. */
    const redisReply *list = r->elements == 1 ? rr_stream_entries(r) : NULL;
    if (list) {
        for (size_t i = 0; i < list->elements; i++) {
            const char *eid;
            const redisReply *fields;
            if (!rr_feed_entry(list->element[i], &eid, &fields))
                continue;
            uint64_t q = rr_event_seq(fields);
            if (q != s->follow_seq + 1) {
                /* The feed was trimmed past us, or Redis lost data and
                 * counts again from 1: start again from a snapshot. */
                s->follow_id[0] = '\0';
                freeReplyObject(r);
                int k = follow_reload(s, fo);
                if (seq)
                    *seq = s->follow_seq;
                return k;
            }
            rr_event_apply(fields, fo);
            s->follow_seq = q;
            snprintf(s->follow_id, sizeof s->follow_id, "%s", eid);
            n++;
        }
    }
    freeReplyObject(r);
    if (n == 0 && reset_behind(s)) {
        s->follow_id[0] = '\0';
        n = follow_reload(s, fo);
    }
    if (seq)
        *seq = s->follow_seq;
    return n;
}

/* --- outbox ------------------------------------------------------------ */

static int rs_outbox_due(store *base, double now, outbox_item *out, int max)
{
    rstore *s = (rstore *)base;
    if (!s || !out || max < 0 || !isfinite(now))
        return -1;
    if (max == 0)
        return 0;
    args a = {0};
    args_script(&a);
    args_dbl(&a, now);
    args_fmt(&a, "%d", max);
    args_dbl(&a, s->lease_s);
    redisReply *r = call(s, SC_DUE, &a);
    args_free(&a);
    int n = rr_outbox_due(r, out, max);
    freeReplyObject(r);
    return n;
}

static int rs_outbox_claim(store *base, const outbox_item *items, size_t n, double lease, int *rcs)
{
    rstore *s = (rstore *)base;
    if (!s || n > UINT32_MAX / 4)
        return -1;
    args a = {0};
    args_script(&a);
    args_fmt(&a, "%lld", (long long)ceil(lease * 1000.0));
    for (size_t i = 0; i < n; i++) {
        args_fmt(&a, "%" PRId64, items[i].id);
        args_str(&a, items[i].job_id);
        args_fmt(&a, "%" PRIu32, items[i].instance);
    }
    redisReply *r = call(s, SC_CLAIM, &a);
    args_free(&a);
    int rc = rr_enqueue_rcs(r, (uint32_t)n, rcs);
    freeReplyObject(r);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (rcs[i] > STORE_CLAIM_BUSY)
            rc = -1;
    return rc;
}

static int rs_outbox_done_many(store *base, const outbox_key *ks, size_t n)
{
    rstore *s = (rstore *)base;
    if (!s)
        return -1;
    if (n == 0)
        return 0;
    args a = {0};
    args_script(&a);
    for (size_t i = 0; i < n; i++) {
        if (!id_ok(ks[i].job_id)) {
            args_free(&a);
            return -1;
        }
        args_fmt(&a, "%" PRId64, ks[i].id);
        args_str(&a, ks[i].job_id);
        args_fmt(&a, "%" PRIu32, ks[i].instance);
    }
    return call_int(s, SC_DONE, &a) < 0 ? -1 : 0;
}

static int rs_outbox_done(store *base, const outbox_key *k)
{
    return rs_outbox_done_many(base, k, 1);
}

static int rs_outbox_retry(store *base, const outbox_key *k, uint32_t attempts, double next_at)
{
    rstore *s = (rstore *)base;
    if (!s || !isfinite(next_at) || !id_ok(k->job_id))
        return -1;
    args a = {0};
    args_script(&a);
    args_fmt(&a, "%" PRId64, k->id);
    args_str(&a, k->job_id);
    args_fmt(&a, "%" PRIu32, k->instance);
    args_fmt(&a, "%" PRIu32, attempts);
    args_dbl(&a, next_at);
    return call_int(s, SC_RETRY, &a) < 0 ? -1 : 0;
}

static size_t rs_outbox_depth(store *base)
{
    rstore *s = (rstore *)base;
    if (!s)
        return 0;
    args a = {0};
    args_str(&a, "ZCARD");
    args_str(&a, "cs:outbox:due");
    long long n = call_int(s, -1, &a);
    return n > 0 ? (size_t)n : 0;
}

static const store_ops REDIS_OPS = {
    .shared = true,
    .close = rs_close,
    .enqueue = rs_enqueue,
    .enqueue_async = rs_enqueue_async,
    .flush_async = rs_flush_async,
    .enqueue_many = rs_enqueue_many,
    .requeue = rs_requeue,
    .take = rs_take,
    .take_more = rs_take_more,
    .queue_depth = rs_queue_depth,
    .finish = rs_finish,
    .place_many = rs_place_many,
    .status_get = rs_status_get,
    .job_delete = rs_job_delete,
    .node_put = rs_node_put,
    .node_delete = rs_node_delete,
    .load = rs_load,
    .follow = rs_follow,
    .outbox_due = rs_outbox_due,
    .outbox_claim = rs_outbox_claim,
    .outbox_done = rs_outbox_done,
    .outbox_done_many = rs_outbox_done_many,
    .outbox_retry = rs_outbox_retry,
    .outbox_give_up = rs_outbox_done, /* the same removal; the caller counts */
    .outbox_depth = rs_outbox_depth,
};
