// decode.js - decodes a pprof file with pprof-format (an independent decoder, not ours) and
// prints the canonical summary that tests/unit/test_profile.c prints from its own model:
//
//   types <type>/<unit>,...          default <type>
//   period <type>/<unit> <n>         time <time_nanos> <duration_nanos>
//   sample <v>,<v>,... thread=<label> bytes=<label> stack=<frame>;<frame>...   (leaf first)
//   comment <text>                   (every Profile.comment, in order, after the samples)
//
// where a frame is its lines joined by "+", each "<function>@<file>:<line>".
// Usage: node decode.js FILE (gzip or raw). Exits 1 with a message if the file is refused.
//
// Our files are decoded exactly as written: memsnap keeps its metadata and timeline in
// standard comments ("memsnap.pid=1234", ...), so nothing needs cutting out first.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { Profile } = require('pprof-format');

let data = fs.readFileSync(process.argv[2]);
if (data[0] === 0x1f && data[1] === 0x8b) data = zlib.gunzipSync(data);

const p = Profile.decode(data);
const s = p.stringTable.strings;
const str = (i) => {
  const n = Number(i);
  if (!(n >= 0 && n < s.length)) throw new Error(`string index ${i} out of range`);
  return s[n];
};
const byId = (list, what) => {
  const m = new Map();
  for (const x of list) {
    const k = BigInt(x.id);
    if (k === 0n || m.has(k)) throw new Error(`${what} id ${k} is zero or repeated`);
    m.set(k, x);
  }
  return m;
};
const functions = byId(p.function, 'function');
const locations = byId(p.location, 'location');
const vt = (v) => (v ? `${str(v.type)}/${str(v.unit)}` : '/');
const out = [];
if (s[0] !== '') throw new Error('string table does not start with ""');
out.push(`types ${p.sampleType.map(vt).join(',')}`);
let def = p.sampleType.length ? str(p.sampleType[p.sampleType.length - 1].type) : '';
if (Number(p.defaultSampleType) !== 0) {
  const want = str(p.defaultSampleType);
  if (p.sampleType.some((t) => str(t.type) === want)) def = want;
}
out.push(`default ${def}`);
out.push(`period ${vt(p.periodType)} ${BigInt(p.period)}`);
out.push(`time ${BigInt(p.timeNanos)} ${BigInt(p.durationNanos)}`);
const frame = (id) => {
  const loc = locations.get(BigInt(id));
  if (!loc) throw new Error(`location id ${id} is not defined`);
  if (!loc.line.length) return `0x${BigInt(loc.address).toString(16)}@:0`;
  return loc.line
    .map((ln) => {
      const f = functions.get(BigInt(ln.functionId));
      if (!f) throw new Error(`function id ${ln.functionId} is not defined`);
      return `${str(f.name)}@${str(f.filename)}:${BigInt(ln.line)}`;
    })
    .join('+');
};
for (const sm of p.sample) {
  let thread = '';
  let bytes = 0n;
  for (const l of sm.label) {
    const key = str(l.key);
    if (key === 'thread' && Number(l.str) !== 0) thread = str(l.str);
    else if (key === 'bytes' && Number(l.str) === 0) bytes = BigInt(l.num);
  }
  // int64 values come back as unsigned 64-bit numbers in some decoders: normalise the sign.
  const vals = sm.value.map((v) => BigInt.asIntN(64, BigInt(v)));
  out.push(
    `sample ${vals.join(',')} thread=${thread} bytes=${BigInt.asIntN(64, bytes)} ` +
      `stack=${sm.locationId.map(frame).join(';')}`
  );
}
for (const c of p.comment) out.push(`comment ${str(c)}`);
process.stdout.write(out.join('\n') + '\n');
