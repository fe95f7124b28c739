"""The presence rules as Redis server-side scripts (Lua 5.1, run atomically by Redis).

Theory of operation
-------------------
In scale-out mode a device's hot state lives in one Redis hash, and every change to
it is one script call: the script reads the state, applies the *same* rules as
``lastseen.presence.engine`` (a line-by-line port; ``tests/scaleout/test_lua_rules.py``
runs both on the same observation sequences and demands identical transitions), writes
the state back, re-scores the device in the deadline index, and for every transition
takes the next fleet-wide seq (``INCR``) and appends it to the event stream with the
stream id ``<seq>-0``. Redis runs one script at a time, so this is the compare-and-set
the embedded hub gets from its single event loop: two instances can never interleave
on one device, and the stream's order is the seq order.

``TIME`` is the only clock (hosts with skewed clocks agree). The ``now`` argument
exists only for tests, which must replay exact times (the rule tests, and the HubAPI
contract suite through ``RedisHub.script_clock``); a serving hub never sends it.

Numbers cross the boundary as ``%.17g`` strings, which round-trip an IEEE double
exactly (Lua's ``tostring`` keeps only 14 digits), so deadlines computed here and in
Python are bit-identical.

Hash fields: ``st`` status, ``si`` since, ``ls`` last_seen, ``lo`` last_own, ``an``
anchor, ``rs`` reason, ``so`` source, ``se`` session, ``fl`` flap times (comma
separated), ``fp`` flapping, ``pn sa oa ft fw`` the profile (name and thresholds,
copied in so a script needs no other key), ``lb`` labels JSON, ``mt`` metrics JSON,
``ca``/``ua`` created/updated. Attributes live in a second hash, one field per key.
"""

from __future__ import annotations

#: The engine: state load/store, deadlines, advance, observe, emit. Shared by scripts.
ENGINE = r"""
local function fmt(x) return string.format('%.17g', x) end
local function num(x)
  if x == false or x == nil or x == '' then return nil end
  return tonumber(x)
end

local function clock(override)
  if override ~= nil and override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local FIELDS = {'st','si','ls','lo','an','rs','so','se','fl','fp','pn','sa','oa','ft','fw','lb'}

local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  if not v[1] then return nil end
  local flaps = {}
  if v[9] and v[9] ~= '' then
    for t in string.gmatch(v[9], '[^,]+') do flaps[#flaps + 1] = tonumber(t) end
  end
  local s = {st = v[1], since = tonumber(v[2]), ls = num(v[3]), lo = num(v[4]),
    an = num(v[5]), rs = v[6] or nil, so = v[7] or nil, se = num(v[8]), fl = flaps,
    fp = v[10] == '1', lb = v[16] or '{}'}
  if s.rs == false then s.rs = nil end
  if s.so == false then s.so = nil end
  local p = {name = v[11], sa = tonumber(v[12]), oa = tonumber(v[13]), ft = tonumber(v[14]),
    fw = tonumber(v[15])}
  return s, p
end

local function store(key, s)
  local parts = {}
  for i, t in ipairs(s.fl) do parts[i] = fmt(t) end
  local args = {'st', s.st, 'si', fmt(s.since), 'fl', table.concat(parts, ','),
    'fp', s.fp and '1' or '0'}
  if s.ls then args[#args + 1] = 'ls'; args[#args + 1] = fmt(s.ls) end
  if s.lo then args[#args + 1] = 'lo'; args[#args + 1] = fmt(s.lo) end
  if s.an then args[#args + 1] = 'an'; args[#args + 1] = fmt(s.an) end
  if s.rs then args[#args + 1] = 'rs'; args[#args + 1] = s.rs end
  if s.so then args[#args + 1] = 'so'; args[#args + 1] = s.so end
  if s.se then args[#args + 1] = 'se'; args[#args + 1] = fmt(s.se) end
  redis.call('HSET', key, unpack(args))
end

local function status_deadline(s, p)
  if s.an == nil then return nil end
  if s.st == 'online' then
    if p.sa >= p.oa then return s.an + p.oa, 'offline', 'timeout:offline_after' end
    return s.an + p.sa, 'stale', 'timeout:stale_after'
  end
  if s.st == 'stale' then
    local d = s.an + p.oa
    if s.since > d then d = s.since end
    return d, 'offline', 'timeout:offline_after'
  end
  return nil
end

local function flap_deadline(s, p)
  if not s.fp then return nil end
  return s.fl[#s.fl] + p.fw
end

local function next_deadline(s, p)
  local due = status_deadline(s, p)
  local flap = flap_deadline(s, p)
  if due == nil then return flap end
  if flap == nil then return due end
  if flap < due then return flap end
  return due
end

-- A transition: returns it as {from, to, at, reason, source, flapping}.
local function transition(s, to, at, reason, source, p)
  local window_start = at - p.fw
  local recent = {}
  for _, t in ipairs(s.fl) do if t > window_start then recent[#recent + 1] = t end end
  local flaps = {}
  local first = #recent - p.ft + 1
  if first < 1 then first = 1 end
  for i = first, #recent do flaps[#flaps + 1] = recent[i] end
  flaps[#flaps + 1] = at
  local from = s.st
  s.fp = s.fp or #flaps > p.ft
  s.st = to; s.since = at; s.rs = reason; s.so = source; s.fl = flaps
  return {from, to, at, reason, source, s.fp}
end

local function advance(s, p, now, out)
  local changed = false
  while true do
    local due, to, reason = status_deadline(s, p)
    local flap = flap_deadline(s, p)
    if flap ~= nil and flap <= now and (due == nil or flap <= due) then
      s.fp = false
      changed = true
    else
      if due == nil or due > now then break end
      out[#out + 1] = transition(s, to, due, reason, 'timeout', p)
      changed = true
    end
  end
  return changed
end

local OWN = {heartbeat = 'heartbeat', telemetry = 'telemetry', connect = 'connected'}
local DEGRADE = {unknown = 'offline', online = 'stale', stale = 'offline'}

-- obs = {source, session (number or nil), status (string or nil), ok (bool)}
local function observe(s, obs, p, now, out)
  local changed = advance(s, p, now, out)
  local source = obs.source
  local to, reason = nil, nil
  if OWN[source] then
    local session = s.se
    if source == 'connect' and obs.session ~= nil then
      if session ~= nil and (obs.session < session
          or (obs.session == session and s.so == 'disconnect')) then
        return changed
      end
      changed = changed or obs.session ~= session
      session = obs.session
    end
    s.ls = now; s.lo = now; s.an = now; s.se = session
    to, reason = 'online', OWN[source]
  elseif source == 'disconnect' then
    local current, session = s.se, obs.session
    if session ~= nil and current ~= nil and session < current then return changed end
    if session ~= nil and session ~= current then s.se = session; changed = true end
    to, reason = 'offline', 'disconnected'
  elseif source == 'probe' then
    if obs.ok then
      s.ls = now; s.an = now
      to, reason = 'online', 'probe_ok'
    elseif s.lo == nil or now - s.lo >= p.sa then
      to, reason = DEGRADE[s.st], 'probe_failed'
    end
  elseif source == 'manual' then
    to, reason = obs.status, 'manual'
    if to == 'online' then s.an = now end
  end
  if to ~= nil and reason ~= nil and to ~= s.st then
    out[#out + 1] = transition(s, to, now, reason, source, p)
    changed = true
  end
  return changed
end

-- Give each transition its seq and append it to the stream, in order.
local function emit(device_id, s, out, k_seq, k_stream, k_counts, maxlen)
  local last = nil
  for _, t in ipairs(out) do
    last = redis.call('INCR', k_seq)
    redis.call('XADD', k_stream, 'MAXLEN', '~', maxlen, string.format('%d', last) .. '-0',
      'd', device_id, 'f', t[1], 't', t[2], 'a', fmt(t[3]), 'r', t[4], 's', t[5],
      'fp', t[6] and '1' or '0', 'l', s.lb)
    redis.call('HINCRBY', k_counts, t[1], -1)
    redis.call('HINCRBY', k_counts, t[2], 1)
  end
  return last
end

local function reschedule(k_deadlines, device_id, s, p)
  local d = next_deadline(s, p)
  if d == nil then
    redis.call('ZREM', k_deadlines, device_id)
  else
    redis.call('ZADD', k_deadlines, fmt(d), device_id)
  end
end

local function reply(s, p, last)
  local parts = {}
  for i, t in ipairs(s.fl) do parts[i] = fmt(t) end
  return {'ok', s.st, fmt(s.since), s.ls and fmt(s.ls) or '', s.lo and fmt(s.lo) or '',
    s.an and fmt(s.an) or '', s.rs or '', s.so or '', s.se and fmt(s.se) or '',
    table.concat(parts, ','), s.fp and '1' or '0', p.name, last and string.format('%d', last) or ''}
end

local function new_device(key, k_ids, k_counts, now, spec)
  local name, sa, oa, ft, fw = string.match(spec, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  redis.call('HSET', key, 'st', 'unknown', 'si', fmt(now), 'fl', '', 'fp', '0', 'pn', name,
    'sa', sa, 'oa', oa, 'ft', ft, 'fw', fw, 'lb', '{}', 'mt', '{}', 'ca', fmt(now),
    'ua', fmt(now))
  redis.call('ZADD', k_ids, 0, ARGV[1])
  redis.call('HINCRBY', k_counts, 'unknown', 1)
end
"""

#: One observation of one device (heartbeat, telemetry, connect, disconnect, probe,
#: manual). KEYS: device, attributes, deadlines, seq, stream, ids, dirty, counts, seen.
#: ARGV: id, source, session, manual status, ok, register, metrics JSON, default
#: profile spec, stream maxlen, max attributes, now override, then attribute pairs.
OBSERVE = (
    ENGINE
    + r"""
local key, k_attrs, k_dl, k_seq, k_stream, k_ids, k_dirty, k_counts, k_seen =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local now = clock(ARGV[11])
local created = false
if redis.call('EXISTS', key) == 0 then
  if ARGV[6] ~= '1' then return {'err', 'not_found'} end
  created = true
end
local nattrs = (#ARGV - 11) / 2
if nattrs > 0 then
  local have = redis.call('HLEN', k_attrs)
  local total = have
  for i = 0, nattrs - 1 do
    if redis.call('HEXISTS', k_attrs, ARGV[12 + 2 * i]) == 0 then total = total + 1 end
  end
  if total > tonumber(ARGV[10]) then return {'err', 'too_many_attributes'} end
end
if created then new_device(key, k_ids, k_counts, now, ARGV[8]) end
local s, p = load(key)
local obs = {source = ARGV[2], session = num(ARGV[3]), status = ARGV[4], ok = ARGV[5] == '1'}
local out = {}
observe(s, obs, p, now, out)
store(key, s)
if nattrs > 0 then
  local pairs_ = {}
  for i = 12, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
  redis.call('HSET', k_attrs, unpack(pairs_))
end
if ARGV[7] ~= '' then redis.call('HSET', key, 'mt', ARGV[7]) end
local last = emit(ARGV[1], s, out, k_seq, k_stream, k_counts, ARGV[9])
reschedule(k_dl, ARGV[1], s, p)
if #out == 0 then redis.call('SADD', k_dirty, ARGV[1]) end
if s.ls == now then redis.call('ZADD', k_seen, fmt(now), ARGV[1]) end
local r = reply(s, p, last)
r[#r + 1] = created and '1' or '0'
return r
"""
)

#: Fire due deadlines: claim up to ARGV[2] devices whose score is due at Redis's now,
#: re-check each against the rules (a heartbeat may have moved it), transition it,
#: re-score it. Exactly once: the claim and the transition are one atomic script.
#: KEYS: deadlines, seq, stream, counts. ARGV: device key prefix, limit, stream
#: maxlen, now override, seq floor (the newest seq the caller has seen: a Redis that
#: lost its data must not hand out seqs again). Returns {fired, claimed, next
#: deadline or '', now}.
SWEEP = (
    ENGINE
    + r"""
local k_dl, k_seq, k_stream, k_counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = clock(ARGV[4])
if ARGV[5] and ARGV[5] ~= '' and tonumber(redis.call('GET', k_seq) or '0') < tonumber(ARGV[5]) then
  redis.call('SET', k_seq, ARGV[5])
end
local ids = redis.call('ZRANGEBYSCORE', k_dl, '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[2]))
local fired = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local s, p = load(key)
  if s == nil then
    redis.call('ZREM', k_dl, id)
  else
    local out = {}
    if advance(s, p, now, out) then store(key, s) end
    emit(id, s, out, k_seq, k_stream, k_counts, ARGV[3])
    fired = fired + #out
    reschedule(k_dl, id, s, p)
  end
end
local first = redis.call('ZRANGE', k_dl, 0, 0, 'WITHSCORES')
return {fired, #ids, first[2] or '', fmt(now)}
"""
)

#: Register or update a device's profile and labels. KEYS as OBSERVE. ARGV: id,
#: profile spec for a new device, new profile spec or '', labels JSON or '', now
#: override, stream maxlen. A different profile applies any deadline now due.
PUT = (
    ENGINE
    + r"""
local key, k_dl, k_seq, k_stream, k_ids, k_counts =
  KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8]
local now = clock(ARGV[5])
local created = false
if redis.call('EXISTS', key) == 0 then
  new_device(key, k_ids, k_counts, now, ARGV[2])
  created = true
end
if ARGV[4] ~= '' then redis.call('HSET', key, 'lb', ARGV[4]) end
local last = nil
local s, p = load(key)
if ARGV[3] ~= '' then
  local name, sa, oa, ft, fw = string.match(ARGV[3], '^([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  if name ~= p.name then
    redis.call('HSET', key, 'pn', name, 'sa', sa, 'oa', oa, 'ft', ft, 'fw', fw)
    s, p = load(key)
    local out = {}
    if advance(s, p, now, out) then store(key, s) end
    last = emit(ARGV[1], s, out, k_seq, k_stream, k_counts, ARGV[6])
    reschedule(k_dl, ARGV[1], s, p)
  end
end
redis.call('HSET', key, 'ua', fmt(now))
local r = reply(s, p, last)
r[#r + 1] = created and '1' or '0'
return r
"""
)

#: Forget a device. KEYS: device, attributes, deadlines, ids, dirty, counts, seen.
#: ARGV: id.
DELETE = r"""
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[6], st, -1)
redis.call('ZREM', KEYS[7], ARGV[1])
return 1
"""

#: Seed the seq from the durable store once, so it never goes backwards after Redis
#: lost its data. KEYS: seq. ARGV: the store's last seq.
SEED_SEQ = r"""
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > cur then redis.call('SET', KEYS[1], ARGV[1]); return floor end
return cur
"""

#: Read devices and Redis's now in one call (one consistent moment, and one round
#: trip on a cluster too, where pipelines cannot carry TIME). KEYS: any key of the
#: hub (routes the call to its slot). ARGV: device key prefix, attributes key prefix,
#: then ids. Returns {sec, usec, then per id: its hash flattened, its attributes}.
READ = r"""
local t = redis.call('TIME')
local out = {t[1], t[2]}
for i = 3, #ARGV do
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ARGV[i])
  out[#out + 1] = redis.call('HGETALL', ARGV[2] .. ARGV[i])
end
return out
"""

#: Put one device from the durable store back into a Redis that has lost it (start-up
#: after Redis lost its data). Never overwrites: a device already in Redis is newer.
#: KEYS: device, attributes, deadlines, ids, counts. ARGV: id, n, n field/value pairs,
#: deadline or '', status, then attribute pairs.
RESTORE = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
local fields = {}
for i = 3, 2 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local rest = 3 + 2 * n
if ARGV[rest] ~= '' then redis.call('ZADD', KEYS[3], ARGV[rest], ARGV[1]) end
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('HINCRBY', KEYS[5], ARGV[rest + 1], 1)
if #ARGV > rest + 1 then
  local attrs = {}
  for i = rest + 2, #ARGV do attrs[#attrs + 1] = ARGV[i] end
  redis.call('HSET', KEYS[2], unpack(attrs))
end
return 1
"""

#: Append a device message (created/updated/deleted) to the stream for every instance's
#: subscribers, with id ``<current seq>-*`` (never ``-0``, which is a transition's).
#: KEYS: seq, stream. ARGV: message JSON, labels JSON, device id, stream maxlen.
DEVICE_MESSAGE = r"""
local seq = redis.call('GET', KEYS[1]) or '0'
if ARGV[5] and ARGV[5] ~= '' then
  -- another kind of message about one device (an alert): 'k' names it
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-*',
    'm', ARGV[1], 'l', ARGV[2], 'd', ARGV[3], 'k', ARGV[5])
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-*',
  'm', ARGV[1], 'l', ARGV[2], 'd', ARGV[3])
"""
