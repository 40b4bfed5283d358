// Cross-checks our Hessian 2.0 codec against hessian.js (an independent implementation).
//
// usage:
//   node hessian_corpus.js generate SEED COUNT OUT
//       writes COUNT messages per kind of value (null and bool, ints, longs, doubles, dates,
//       strings, binaries, lists, typed lists, maps, typed maps, objects, nested values,
//       shared values, several values per message), encoded with hessian.js's v2 encoder, to
//       OUT as JSON lines `{"kind": K, "expect": [DESC, ...], "hex": "..."}`: the values of
//       one message in a typed description, and the message's bytes.
//   node hessian_corpus.js check IN
//       decodes every line of IN (same format, e.g. written by our encoder) with hessian.js
//       and compares each value with its description; prints the mismatches and exits 1 if
//       there is any.
//
// A description (DESC) says exactly what the wire carries:
//   {"t":"null"}  {"t":"bool","v":true}  {"t":"int","v":5}  {"t":"long","v":"-5"}
//   {"t":"double","v":"<16 hex digits of the IEEE-754 bits>"}  {"t":"date","v":"<ms>"}
//   {"t":"string","v":"..."}  {"t":"binary","v":"<hex>"}
//   {"t":"list","type":null|"[int",...,"v":[DESC...]}
//   {"t":"map","type":null|"java.util.TreeMap",...,"v":[[DESC,DESC]...]}
//   {"t":"object","class":"com.example.Person","v":[["name",DESC]...]}
// Longs and dates are decimal strings (they do not fit a JSON number exactly).
'use strict';

const fs = require('fs');
const hessian = require('hessian.js');

const TYPED_MAPS = ['java.util.TreeMap', 'java.util.LinkedHashMap', 'com.alibaba.fastjson.JSONObject'];
const TYPED_LISTS = ['[int', '[string', '[long', '[java.lang.Object', 'java.util.LinkedList', 'java.util.HashSet'];
const CLASSES = [
  ['com.example.Person', ['name', 'age', 'email']],
  ['com.example.Point', ['x', 'y']],
  ['com.example.Empty', []],
  ['com.example.Box', ['value']],
  ['org.example.Order$Line', ['sku', 'qty', 'price', 'tags']],
];
// Enough classes in one message that instances need the long `O` form (class number > 15).
for (let i = 0; i < 20; i++) CLASSES.push([`com.example.gen.C${i}`, i % 3 === 0 ? ['a'] : ['a', 'b']]);

// --- seeded random numbers (mulberry32) ---------------------------------------------------
let state = 0;
function rnd() {
  state = (state + 0x6d2b79f5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)); // inclusive, |range| < 2^53
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const chance = (p) => rnd() < p;
function u64() {
  return (BigInt(Math.floor(rnd() * 4294967296)) << 32n) | BigInt(Math.floor(rnd() * 4294967296));
}
const i64 = () => BigInt.asIntN(64, u64());

// --- helpers --------------------------------------------------------------------------------
function doubleBits(x) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b.toString('hex');
}
function bitsDouble(hex) {
  return Buffer.from(hex, 'hex').readDoubleBE(0);
}

// Each generator returns [desc, js]: the description and the value handed to hessian.js.
const gNull = () => [{ t: 'null' }, null];
const gBool = () => { const v = chance(0.5); return [{ t: 'bool', v }, v]; };

const INT_EDGES = [0, 1, -1, -16, 47, -17, 48, -2048, 2047, -2049, 2048, -262144, 262143,
  -262145, 262144, -2147483648, 2147483647];
function gInt() {
  let v;
  if (chance(0.3)) v = pick(INT_EDGES);
  else {
    const r = pick([[-16, 47], [-2048, 2047], [-262144, 262143], [-2147483648, 2147483647]]);
    v = int(r[0], r[1]);
  }
  // Plain JS numbers in the int32 range are written as ints; the typed form says so.
  return [{ t: 'int', v }, chance(0.5) ? v : { $class: 'int', $: v }];
}

const LONG_EDGES = [0n, 1n, -1n, -8n, 15n, -9n, 16n, -2048n, 2047n, -2049n, 2048n, -262144n,
  262143n, -262145n, 262144n, -2147483648n, 2147483647n, -2147483649n, 2147483648n,
  9007199254740991n, 9007199254740992n, -9007199254740991n, -9007199254740993n,
  -9223372036854775808n, 9223372036854775807n];
function gLong() {
  let v;
  if (chance(0.3)) v = pick(LONG_EDGES);
  else {
    const r = pick([[-8, 15], [-2048, 2047], [-262144, 262143], [-2147483648, 2147483647]]);
    v = chance(0.7) ? BigInt(int(r[0], r[1])) : i64();
  }
  const s = v.toString();
  return [{ t: 'long', v: s }, { $class: pick(['long', 'java.lang.Long']), $: s }];
}

function gDouble() {
  let v;
  switch (int(0, 7)) {
    case 0: v = pick([0, -0, 1, -1, 127, -128, 128, -129, 32767, -32768, 32768, -32769,
      NaN, Infinity, -Infinity, 5e-324, Number.MAX_VALUE, -Number.MIN_VALUE, 0.5, 1.5, 0.001,
      -0.001, 2147483.647, 2147483.648, -2147483.648, -2147483.649, 1e21, 1e-7]); break;
    case 1: v = int(-128, 127); break;
    case 2: v = int(-32768, 32767); break;
    case 3: v = int(-2147483648, 2147483647) / 1000; break; // the 0x5f (mills) form, mostly
    case 4: v = Math.fround((rnd() - 0.5) * 1e6); break;
    case 5: v = (rnd() - 0.5) * Math.pow(10, int(-30, 30)); break;
    case 6: v = int(-1e15, 1e15); break;
    default: { // any bit pattern
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(u64());
      v = b.readDoubleBE(0);
    }
  }
  return [{ t: 'double', v: doubleBits(v) }, { $class: pick(['double', 'java.lang.Double']), $: v }];
}

const DATE_MAX = 8640000000000000; // the range of a JS Date
function gDate() {
  let ms;
  switch (int(0, 3)) {
    case 0: ms = int(-(2 ** 31), 2 ** 31 - 1) * 60000; break; // whole minutes: the compact form
    case 1: ms = int(-4e12, 4e12); break;
    case 2: ms = pick([0, 1, -1, 60000, -60000, 59999, DATE_MAX, -DATE_MAX, 1700000000000]); break;
    default: ms = int(-DATE_MAX, DATE_MAX);
  }
  return [{ t: 'date', v: String(ms) }, chance(0.5) ? new Date(ms) : { $class: 'java.util.Date', $: new Date(ms) }];
}

const ALPHABETS = [
  [0x20, 0x7e], [0x00, 0x1f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd],
  [0x10000, 0x10ffff], [0x1f600, 0x1f64f],
];
function text(units) {
  let s = '';
  const alphabets = [pick(ALPHABETS), pick(ALPHABETS), [0x61, 0x7a]];
  while (s.length < units) {
    const a = pick(alphabets);
    s += String.fromCodePoint(int(a[0], a[1]));
  }
  return s;
}
const STRING_LENGTHS = [0, 1, 31, 32, 1023, 1024, 4096, 0x7fff, 0x8000, 0x8001, 65535, 65536, 70000];
function gString() {
  let s;
  if (chance(0.04)) {
    // A surrogate pair straddling the first chunk boundary (0x8000 UTF-16 units).
    s = 'a'.repeat(0x7fff) + '\u{1f600}' + text(int(0, 40000));
  } else if (chance(0.1)) s = text(pick(STRING_LENGTHS));
  else s = text(chance(0.8) ? int(0, 40) : int(0, 2000));
  return [{ t: 'string', v: s }, s];
}

const BINARY_LENGTHS = [0, 1, 15, 16, 1023, 1024, 4093, 4094, 8186, 8187, 0x8000, 0x8001, 70000];
function gBinary() {
  const n = chance(0.15) ? pick(BINARY_LENGTHS) : int(0, chance(0.8) ? 40 : 3000);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(0, 255);
  return [{ t: 'binary', v: b.toString('hex') }, b];
}

function gShortString() {
  const s = text(chance(0.9) ? int(0, 12) : int(0, 300));
  return [{ t: 'string', v: s }, s];
}

const LEAVES = [gNull, gBool, gInt, gLong, gDouble, gDate, gString, gBinary];
const gLeaf = () => pick(LEAVES)();
function shortLeaf() {
  const g = pick(LEAVES);
  if (g === gString) return gShortString();
  if (g === gBinary) { const b = Buffer.from([int(0, 255), int(0, 255)]); return [{ t: 'binary', v: b.toString('hex') }, b]; }
  return g();
}

function listLength() {
  return chance(0.7) ? int(0, 9) : int(0, 40);
}

function gList(elem, typed, n = listLength()) {
  const descs = [];
  const items = [];
  for (let i = 0; i < n; i++) {
    const [d, v] = elem();
    descs.push(d);
    items.push(v);
  }
  if (typed) return [{ t: 'list', type: typed, v: descs }, { $class: typed, $: items }];
  return [{ t: 'list', type: null, v: descs }, chance(0.8) ? items : { $class: 'java.util.ArrayList', $: items }];
}
const gUntypedList = (elem = shortLeaf) => gList(elem, null);
function gTypedList(elem) {
  const type = pick(TYPED_LISTS);
  const e = elem || (type === '[int' ? gInt : type === '[string' ? gShortString : type === '[long' ? gLong : shortLeaf);
  return gList(e, type);
}

function mapOf(key, val, typed) {
  // Build entries with their JS key kept alongside, so a repeated string key is described once.
  const n = chance(0.7) ? int(0, 6) : int(0, 30);
  const m = new Map();
  const descOf = new Map();
  for (let i = 0; i < n; i++) {
    const [kd, kv] = key();
    const [vd, vv] = val();
    m.set(kv, vv);
    descOf.set(kv, [kd, vd]);
  }
  const descs = [...m.keys()].map((k) => descOf.get(k));
  if (typed) return [{ t: 'map', type: typed, v: descs }, { $class: typed, $: m }];
  return [{ t: 'map', type: null, v: descs }, chance(0.8) ? m : { $class: 'java.util.HashMap', $: m }];
}
const gUntypedMap = (val = shortLeaf) => mapOf(pick([gShortString, gInt, shortLeaf]), val, null);
const gTypedMap = (val = shortLeaf) => mapOf(pick([gShortString, gInt, gLong]), val, pick(TYPED_MAPS));

function gObject(field = shortLeaf, classes = CLASSES) {
  const [cls, fields] = pick(classes);
  const descs = [];
  const obj = {};
  for (const f of fields) {
    const [d, v] = field();
    descs.push([f, d]);
    obj[f] = v;
  }
  return [{ t: 'object', class: cls, v: descs }, { $class: cls, $: obj }];
}
// Many instances of a few classes: definitions written once and reused.
function gObjects() {
  const classes = chance(0.5) ? CLASSES.slice(0, 5) : CLASSES;
  const n = chance(0.5) ? int(2, 8) : int(17, 30);
  return gList(() => gObject(shortLeaf, classes), chance(0.3) ? '[java.lang.Object' : null, n);
}

function gNested(depth = 0) {
  if (depth >= 4 || chance(0.3)) return shortLeaf();
  const inner = () => gNested(depth + 1);
  switch (int(0, 4)) {
    case 0: return gUntypedList(inner);
    case 1: return gTypedList(chance(0.5) ? inner : undefined);
    case 2: return gUntypedMap(inner);
    case 3: return gTypedMap(inner);
    default: return gObject(inner);
  }
}

// The same list, map or object twice: hessian.js writes the second one as a back-reference.
function gShared() {
  const [d, v] = pick([() => gUntypedList(), () => gTypedList(), () => gUntypedMap(), () => gTypedMap(), () => gObject()])();
  const [d2, v2] = gNested(2);
  const descs = [d, d2, d];
  const items = [v, v2, v];
  if (chance(0.5)) return [{ t: 'list', type: null, v: descs }, items];
  return gObject(() => { const i = int(0, 2); return [descs[i], items[i]]; });
}

const KINDS = {
  'null-bool': () => [chance(0.3) ? gNull() : gBool()],
  int: () => [gInt()],
  long: () => [gLong()],
  double: () => [gDouble()],
  date: () => [gDate()],
  string: () => [gString()],
  binary: () => [gBinary()],
  list: () => [chance(0.2) ? gList(gLeaf, null, int(0, 3)) : gUntypedList()],
  'typed-list': () => [gTypedList()],
  map: () => [gUntypedMap()],
  'typed-map': () => [gTypedMap()],
  object: () => [chance(0.5) ? gObject() : gObjects()],
  nested: () => [gNested()],
  shared: () => [gShared()],
  // Several top-level values in one message (as in a Dubbo body): class definitions and type
  // names written once are referred to by the later values.
  message: () => {
    const n = int(2, 5);
    const out = [];
    for (let i = 0; i < n; i++) out.push(pick([gObject, gObjects, gTypedList, gTypedMap, gNested, gLeaf])());
    return out;
  },
};

// Counts the values in a description, nested ones included, by type.
function tally(d, counts) {
  counts[d.t] = (counts[d.t] || 0) + 1;
  if (d.t === 'list') d.v.forEach((x) => tally(x, counts));
  if (d.t === 'map') d.v.forEach(([k, x]) => { tally(k, counts); tally(x, counts); });
  if (d.t === 'object') d.v.forEach(([, x]) => tally(x, counts));
}

function generate(seed, count, out) {
  state = seed | 0;
  const encoder = new hessian.EncoderV2({
    size: 1 << 20,
    mapTypes: Object.fromEntries(TYPED_MAPS.map((t) => [t, true])),
  });
  const fd = fs.openSync(out, 'w');
  let lines = 0;
  let values = 0;
  const counts = {};
  for (const [kind, gen] of Object.entries(KINDS)) {
    for (let i = 0; i < count; i++) {
      const pairs = gen();
      encoder.reset();
      for (const [, v] of pairs) encoder.write(v);
      const hex = encoder.get().toString('hex');
      values += pairs.length;
      pairs.forEach(([d]) => tally(d, counts));
      fs.writeSync(fd, JSON.stringify({ kind, expect: pairs.map(([d]) => d), hex }) + '\n');
      lines++;
    }
  }
  fs.closeSync(fd);
  const all = Object.values(counts).reduce((a, b) => a + b, 0);
  const by = Object.entries(counts).map(([t, n]) => `${t} ${n}`).join(', ');
  console.log(`generated ${lines} messages, ${values} top-level values, ${all} values in all (${by})`);
}

// --- decoding with hessian.js into descriptions ------------------------------------------------
const SCALARS = {
  readNull: () => ({ t: 'null' }),
  readBool: (v) => ({ t: 'bool', v: typeof v === 'object' ? v.$ : v }),
  readInt: (v) => ({ t: 'int', v }),
  readLong: (v) => ({ t: 'long', v: String(v) }),
  readDouble: (v) => ({ t: 'double', v: doubleBits(v) }),
  readDate: (v) => ({ t: 'date', v: String(v.getTime()) }),
  readString: (v) => ({ t: 'string', v }),
  readBytes: (v) => ({ t: 'binary', v: v.toString('hex') }),
};
const TAG = Symbol('described');

function decodeAll(buf) {
  const d = new hessian.DecoderV2(buf);
  const baseRead = Object.getPrototypeOf(d).read;
  // Tag every scalar with the method that read it, so an int stays distinct from a long.
  d.read = function (withType) {
    const method = this.BYTE_CODES[this.byteBuffer.get(this.byteBuffer.position())];
    const v = baseRead.call(this, withType);
    const s = SCALARS[method];
    return s ? { [TAG]: s(v) } : v;
  };
  const out = [];
  while (d.byteBuffer.position() < buf.length) out.push(describe(d.read(true)));
  return out;
}

function describe(v) {
  if (v && v[TAG]) return v[TAG];
  if (Array.isArray(v)) return { t: 'list', type: null, v: v.map(describe) };
  // A back-reference to an untyped map yields the map itself (hessian.js stores it unwrapped).
  if (v && typeof v === 'object' && v.$map instanceof Map && v.$class === undefined) {
    return describe({ $class: 'java.util.HashMap', $: v });
  }
  if (v && typeof v === 'object' && typeof v.$class === 'string') {
    if (Array.isArray(v.$)) return { t: 'list', type: v.$class, v: v.$.map(describe) };
    if (v.$ && v.$.$map instanceof Map) {
      const type = v.$class === 'java.util.HashMap' ? null : v.$class;
      return { t: 'map', type, v: [...v.$.$map].map(([k, x]) => [describe(k), describe(x)]) };
    }
    if (v.$ && typeof v.$ === 'object') {
      return { t: 'object', class: v.$class, v: Object.keys(v.$).map((k) => [k, describe(v.$[k])]) };
    }
  }
  throw new Error('cannot describe a decoded ' + typeof v + ': ' + String(v));
}

// Canonical text of a description: doubles compare by value (NaN equals NaN, -0 equals 0).
function canonical(d) {
  return JSON.stringify(d, (k, x) => {
    if (x && x.t === 'double') {
      const f = bitsDouble(x.v);
      return { t: 'double', v: Number.isNaN(f) ? 'NaN' : doubleBits(f === 0 ? 0 : f) };
    }
    if (x && (x.t === 'list' || x.t === 'map') && x.type === undefined) x = { ...x, type: null };
    // Key order differs between writers: sort the keys of every description.
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      return Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]]));
    }
    return x;
  });
}

function clip(s) {
  return s.length > 400 ? s.slice(0, 400) + `... (${s.length} chars)` : s;
}

function check(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  let bad = 0;
  let values = 0;
  lines.forEach((line, n) => {
    const { kind, expect, hex } = JSON.parse(line);
    values += expect.length;
    let got;
    try {
      got = decodeAll(Buffer.from(hex, 'hex'));
    } catch (e) {
      bad++;
      if (bad <= 20) console.log(`MISMATCH line ${n + 1} (${kind}): hessian.js cannot decode it: ${e.message}\n  hex ${clip(hex)}`);
      return;
    }
    const want = canonical(expect);
    const have = canonical(got);
    if (want !== have) {
      bad++;
      if (bad <= 20) console.log(`MISMATCH line ${n + 1} (${kind}):\n  want ${clip(want)}\n  got  ${clip(have)}\n  hex  ${clip(hex)}`);
    }
  });
  console.log(`checked ${lines.length} messages, ${values} top-level values: ${bad} mismatched`);
  process.exit(bad === 0 ? 0 : 1);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'generate' && args.length === 3) {
  generate(Number(args[0]), Number(args[1]), args[2]);
} else if (mode === 'check' && args.length === 1) {
  check(args[0]);
} else {
  console.error('usage: node hessian_corpus.js generate SEED COUNT OUT | check IN');
  process.exit(2);
}
