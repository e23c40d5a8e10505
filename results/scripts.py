"""Lua the store runs inside Redis: `record_epoch` in one round trip instead of a read followed by a pipeline.

Redis 6.2 (the embedded server) has EVAL but not Functions, so the script travels by EVALSHA (`ResultStore` loads it
again after a SCRIPT FLUSH or a server restart). What is written reads back exactly as the plain HSET/ZADD of before:
every value is the text redis-py would have sent. The script reads the trial, compares the best, takes the epochs
max, picks the boards and their scores, and writes. No key is spelled here: `record_epoch_lua` puts the templates of
`results.keys` into the script's text, with the store's rules for which metric goes where.

Two ways to call it, both one EVALSHA:
- plain (`plain_args`), for a record of finite ints and floats only (what training reports). The script takes every
  value's text straight out of the record's JSON: json.dumps writes an int or float as its repr, the text redis-py
  sends for it, so Python builds nothing per field. This is what makes the one round trip pay: per record, Python's
  share is the record's JSON (which it writes anyway) and a few small arguments.
- packed (`record_epoch_args`), for anything else (text, bools, None, nan/inf, a key JSON escapes, a checkpoint that
  is not a str): Python gives each field's text and float() of each odd score, as redis-py and the old path would.

Costs, measured (CPU per record, see benchmarks/store_load.py): the writer's Python is most of the old path's; on the
server Lua runs at tens of instructions per bytecode and a few hundred per call into C, so the script avoids building
tables and strings it does not need (constants are written into its text, not passed or rebuilt on every call).
"""

from __future__ import annotations

import json
from typing import Optional

from redis.exceptions import DataError

from tunelab.results import keys

_SLOT = "\0"  # where a template takes the run id / dataset / label (never part of a key's fixed text)

# The script after the prelude `record_epoch_lua` writes (run_key, run_trials_key, board_key, families_key,
# augments_key, CHANNEL from `results.keys`; copy, TEST, VAL: the store's rules). KEYS: the trial hash, its epochs
# hash, the version counter. ARGV[1]: the epoch's record (JSON, sort_keys). Plain: ARGV[2..8] = trial, epoch, updated,
# checkpoint, runtime ("" for none), the event's JSON after the run id, and the record's keys in its own order, each
# after a quote (the order a first HSET lays the test_*/best_* fields out in; the JSON's is sorted). Packed: ARGV[2] =
# one JSON object (see `record_epoch_args`).
# A score (val_acc on the trial's run, a board's metric on that board) is float(value): its text (plain) or a number
# (packed; redis.call sends a number with 17 digits, so ZADD stores that double).
# Replies: nil when written; {"no_trial"}; {"float", metric} or {"encode"} for a value the two-round-trip path
# failed on (nothing is written; the caller raises what that path raised); a Redis error as MULTI/EXEC gives it:
# every write still made, the first error returned.
_BODY = r"""
local function utf16(seq)  -- one UTF-8 sequence as \uXXXX (a surrogate pair above the BMP)
  local c, n = seq:byte(1), #seq
  local cp = n == 2 and c - 192 or n == 3 and c - 224 or c - 240
  for k = 2, n do cp = cp * 64 + seq:byte(k) - 128 end
  if cp < 65536 then return string.format('\\u%04x', cp) end
  cp = cp - 65536
  return string.format('\\u%04x\\u%04x', 55296 + math.floor(cp / 1024), 56320 + cp % 1024)
end
local function json_string(s)  -- as Python's json.dumps writes it (ensure_ascii)
  if not string.find(s, '[%z\1-\31"\\\127-\255]') then return '"' .. s .. '"' end
  local short = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
                 ['\t'] = '\\t'}
  s = string.gsub(s, '[%z\1-\31"\\\127]', function(ch) return short[ch] or string.format('\\u%04x', ch:byte()) end)
  s = string.gsub(s, '[\192-\247][\128-\191]+', utf16)
  return '"' .. s .. '"'
end

local t = redis.call('HMGET', KEYS[1], 'run', 'boards', 'best_val_acc', 'epochs_done', 'dataset', 'family', 'model',
                     'augment')
local run, boards, stored_best, done, dataset, family, model, augment = t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]
if not run then return {'no_trial'} end

local packed = #ARGV == 2 and cjson.decode(ARGV[2])
local trial, epoch, updated, checkpoint, runtime, tail
if packed then
  trial, epoch, updated, checkpoint, runtime, tail = packed.trial, packed.epoch, packed.updated, '', packed.runtime,
                                                     packed.event
else
  trial, epoch, updated, checkpoint, runtime, tail = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
end
local epochs_done = epoch
if done and done ~= '' and tonumber(done) > tonumber(epoch) then epochs_done = done end
local hset, n = {'HSET', KEYS[1], 'updated', updated, 'epochs_done', epochs_done}, 6  -- n: its length
-- Each way defines score(name) (nil: no such value; false: no number; else the number or its text) and best()
-- (appends the best_* fields to hset; nil: one of them is a value redis-py refuses), and appends the trial's fields
-- to hset (fields_ok false: one of them is such a value).
local score, best, fields_ok
if packed then  -- Python made every text
  local values, odd = cjson.decode(ARGV[1]), packed.odd
  function score(name)
    if odd[name] ~= nil then return odd[name] end
    local v = values[name]
    if type(v) == 'number' then return v end
  end
  for _, v in ipairs(packed.fields) do n = n + 1; hset[n] = v end
  fields_ok = packed.fields_ok
  if packed.best_ok then function best() for _, v in ipairs(packed.best) do n = n + 1; hset[n] = v end end end
else  -- plain: every value is a finite number, whose text in the record's JSON is its repr
  -- No value is a string and no key holds a quote or an escape: a key runs to the next quote, a value to the next
  -- comma or brace. (One gmatch costs less here than finds and subs: Lua's calls into C are what cost.)
  local text = {}
  for k, v in string.gmatch(ARGV[1], '"([^"]*)":([^,}]*)') do text[k] = v end
  local names = ARGV[8]  -- the record's keys in its own order, each after a quote
  local function each(needle, f)  -- f(key) for the record's keys that start as '"' .. a prefix (`needle`), in order
    local i = string.find(names, needle, 1, true)
    while i do
      local j = string.find(names, '"', i + 1, true)
      f(string.sub(names, i + 1, (j or 0) - 1))
      i = j and string.find(names, needle, j, true)
    end
  end
  function score(name)
    local s = text[name]
    if s == nil then return nil end
    local x = tonumber(s)  -- inf: an int past a double's range, on which float() raises OverflowError
    if x == math.huge or x == -math.huge then return false end
    return s
  end
  n = copy(text, hset, n)
  each(TEST, function(k) hset[n + 1], hset[n + 2], n = k, text[k], n + 2 end)
  if checkpoint ~= '' then hset[n + 1], hset[n + 2], n = 'checkpoint', checkpoint, n + 2 end
  if runtime ~= '' then hset[n + 1], hset[n + 2], n = 'runtime', runtime, n + 2 end
  fields_ok = true
  function best()
    hset[n + 1], hset[n + 2], hset[n + 3], hset[n + 4], n = 'best_val_acc', text.val_acc, 'best_epoch', epoch, n + 4
    each(VAL, function(k) if k ~= 'val_acc' then hset[n + 1], hset[n + 2], n = 'best_' .. k, text[k], n + 2 end end)
  end
end

local val = score('val_acc')
if val == false then return {'float', 'val_acc'} end
local improved = val ~= nil and (not stored_best or tonumber(val) > tonumber(stored_best))
boards = (boards and boards ~= '') and cjson.decode(boards) or {}
local labels = {}
for label in pairs(boards) do labels[#labels + 1] = label end
if #labels > 1 then table.sort(labels) end  -- the order the stored JSON has them in (sorted keys)
local ranked = {}
for _, label in ipairs(labels) do
  local name = boards[label].val
  local s = score(name)
  if s == false then return {'float', name} end
  if s ~= nil then ranked[#ranked + 1] = {label, s} end
end
if not fields_ok or (improved and not best) then return {'encode'} end

local first_error
local function write(...)  -- like a command in MULTI/EXEC: an error does not stop the others
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err and not first_error then first_error = reply end
end
write('HSET', KEYS[2], epoch, ARGV[1])
if improved then best() end
write(unpack(hset, 1, n))
if runtime ~= '' then write('HSETNX', run_key(run), 'runtime', runtime) end
if val ~= nil then write('ZADD', run_trials_key(run), 'GT', val, trial) end
if dataset == false then dataset = 'None' end  -- what the f-string of a missing dataset gave
local facet_family = (family and family ~= '') and family or ((model and model ~= '') and model or '')
local facet_augment = (augment and augment ~= '') and augment or 'none'
for _, r in ipairs(ranked) do
  write('ZADD', board_key(dataset, r[1]), 'GT', r[2], trial)
  write('SADD', families_key(dataset, r[1]), facet_family)
  write('SADD', augments_key(dataset, r[1]), facet_augment)
end
write('INCR', KEYS[3])
write('PUBLISH', CHANNEL, '{"epoch":' .. epoch .. ',"run":' .. json_string(run) .. tail)
return first_error
"""


def _lua(text: str) -> str:
    """A Lua string literal: printable ASCII as it is, every other byte as a decimal escape."""
    return '"' + "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "".join(f"\\{b}" for b in ch.encode())
                         for ch in text) + '"'


def record_epoch_lua(last: tuple[str, ...], copied: tuple[tuple[str, str], ...], trial: tuple[str, ...],
                     test_prefix: str, val_prefix: str) -> str:
    """The script, with what it needs written in as code (tables built on every call would cost more than the rest of
    the setup): a function per key template of `results.keys` and its channel, and the store's rules: `copy`, the
    fields a record's metrics go to (as last_<name> for `last`, under another name for `copied`'s (metric, field), as
    they are for `trial`, in that order), then test_* ones (`test_prefix`), and val_* ones as best_<name>
    (`val_prefix`)."""
    templates = {"run_key": keys.run(_SLOT), "run_trials_key": keys.run_trials(_SLOT),
                 "board_key": keys.leaderboard(_SLOT, _SLOT), "families_key": keys.board_facet(_SLOT, _SLOT, "family"),
                 "augments_key": keys.board_facet(_SLOT, _SLOT, "augment")}
    lines = []
    for name, template in templates.items():
        first, *rest = template.split(_SLOT)
        slots = ("a", "b")[:len(rest)]
        parts = [_lua(first)]
        for slot, text in zip(slots, rest):
            parts += [slot, _lua(text)] if text else [slot]
        lines.append(f"local function {name}({', '.join(slots)}) return {' .. '.join(parts)} end")
    test, val = _lua('"' + test_prefix), _lua('"' + val_prefix)  # as a key starts in ARGV[8]
    lines += [f"local CHANNEL, TEST, VAL = {_lua(keys.EVENTS)}, {test}, {val}",
              "local function copy(text, hset, n)  -- appends the fields a record's metrics go to; returns the length",
              "  local v"]
    for metric, field in [*((k, f"last_{k}") for k in last), *copied, *((k, k) for k in trial)]:
        lines.append(f"  v = text[{_lua(metric)}]; if v then hset[n + 1], hset[n + 2], n = {_lua(field)}, v, n + 2 end")
    lines += ["  return n", "end"]
    return "\n".join(lines) + "\n" + _BODY


_PLAIN = frozenset((int, float))  # type() of a value the plain way takes as its JSON text


def plain_args(trial_id: str, epoch: int, record: dict, record_json: str, updated: float, checkpoint, runtime: str,
               event_tail: str) -> Optional[tuple]:
    """ARGV for the plain way, or None when the record is not all finite numbers (or a key needs a JSON escape, or the
    checkpoint is not text): then `record_epoch_args`. All the work here is C (a set test, a few scans, a join), so a
    record of numbers costs Python almost nothing beyond its JSON."""
    if (not _PLAIN.issuperset(map(type, record.values())) or type(checkpoint) is not str
            # ensure_ascii: a key with a quote, a control character or non-ASCII is escaped in the JSON; json.dumps
            # writes nan and inf as NaN and Infinity (a key holding those words goes the packed way too: no harm)
            or "\\" in record_json or "NaN" in record_json or "Infinity" in record_json):
        return None
    return (record_json, trial_id, epoch, updated, checkpoint, runtime, event_tail, '"' + '"'.join(record))


def epoch_fields(rules: tuple, epoch: int, record: dict, checkpoint, runtime: str) -> tuple[dict, dict]:
    """For the packed way: the trial's fields an epoch writes (after `updated` and `epochs_done`, which the script puts
    first), and the best_* ones written when its val_acc beats the stored best, in the order a first HSET lays them
    out. `rules`: as `record_epoch_lua` takes them. The plain way's script makes the same from the record's JSON."""
    last, copied, trial, test_prefix, val_prefix = rules
    fields = {f"last_{k}": record[k] for k in last if k in record}
    fields.update((field, record[k]) for k, field in copied if k in record)
    fields.update((k, record[k]) for k in trial if record.get(k) is not None)
    fields.update((k, v) for k, v in record.items() if k.startswith(test_prefix))
    if checkpoint:
        fields["checkpoint"] = checkpoint
    if runtime:
        fields["runtime"] = runtime
    best = {"best_val_acc": record.get("val_acc"), "best_epoch": epoch,
            **{f"best_{k}": v for k, v in record.items() if k.startswith(val_prefix)}}
    return fields, best


_EXACT = 2**53  # ints a double holds exactly
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # text as it is: redis-py encodes it as before


def record_epoch_args(encoder, trial_id: str, epoch: int, record: dict, record_json: str, updated: float,
                      fields: dict, best: dict, runtime: str, event_tail: str) -> tuple[str, str]:
    """ARGV for the packed way: the record and one JSON object: trial, epoch, updated, runtime ("" for none), event
    (the event's JSON after the run id), fields (the trial's fields, [name, value, ...]), best (best_* fields,
    [name, value, ...], written when val_acc beats the stored best), fields_ok and best_ok (false: some value there is
    one redis-py cannot send; the list is left empty), odd ({metric: float(value) as text, or false for no number},
    for the record's values that are not plain numbers). Values become the text redis-py's `encoder` makes of them
    (the repr of an int or float, as hiredis writes them too; DataError for what it refuses)."""
    def text(v) -> str:
        kind = type(v)
        return repr(v) if kind is float or kind is int else v if kind is str else encoder.encode(v).decode()

    odd = {}  # float() of what cjson would not read as float() does: text, bools, ints past 2**53
    for k, v in record.items():
        kind = type(v)
        if kind is float or v is None or (kind is int and -_EXACT < v < _EXACT):
            continue
        try:
            odd[k] = repr(float(v))
        except (ValueError, OverflowError):
            odd[k] = False

    def flat(mapping: dict) -> list[str]:  # [] for a mapping holding a value redis-py refuses (None, a bool)
        try:
            return [x for kv in mapping.items() for x in (kv[0], text(kv[1]))]
        except DataError:
            return []

    fields_text, best_text = flat(fields), flat(best)
    payload = {"trial": trial_id, "epoch": text(epoch), "updated": text(updated), "runtime": runtime,
               "event": event_tail, "fields": fields_text, "fields_ok": len(fields_text) == 2 * len(fields),
               "best": best_text, "best_ok": len(best_text) == 2 * len(best), "odd": odd}
    return record_json, _JSON.encode(payload)
